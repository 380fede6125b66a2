package txn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/watch"
)

// PolicyKey is where a repo keeps its policy.
const PolicyKey = storage.ReservedPrefix + "policy.yaml"

// Policy is a repo's .gitstate/policy.yaml: protected prefixes (writes only
// through transactions, with approvals and reports) and JSON Schemas for
// key patterns.
//
//	protected:
//	  - prefix: prod/
//	    approvals: 1
//	    reports: [plan-bot]
//	schemas:
//	  - pattern: apps/*/replicas.json
//	    schema: {type: object, required: [replicas]}
//	  - pattern: apps/**/config.yaml
//	    schema_key: .gitstate/schemas/config.json
type Policy struct {
	Protected []ProtectedRule `json:"protected,omitempty"`
	Schemas   []SchemaRule    `json:"schemas,omitempty"`
}

// ProtectedRule protects the keys under Prefix: direct writes on main are
// refused, and a transaction changing them commits only with Approvals
// valid approvals and an "ok" report from each of Reports.
type ProtectedRule struct {
	Prefix    string   `json:"prefix"`
	Approvals int      `json:"approvals,omitempty"`
	Reports   []string `json:"reports,omitempty"`
}

// SchemaRule attaches a JSON Schema to the keys matching Pattern ('*'
// matches within a segment, '**' any number of segments). The schema is
// inline (Schema) or kept in the repo (SchemaKey).
type SchemaRule struct {
	Pattern   string          `json:"pattern"`
	Schema    json.RawMessage `json:"schema,omitempty"`
	SchemaKey string          `json:"schema_key,omitempty"`

	compiled *jsonschema.Schema
}

// reservedRule is the implicit protection of the server's own
// configuration: it changes only through transactions.
var reservedRule = ProtectedRule{Prefix: storage.ReservedPrefix}

// ParsePolicy parses and checks a policy document. Schemas kept in the repo
// are read with read.
func ParsePolicy(data []byte, read func(key string) ([]byte, error)) (*Policy, error) {
	var p Policy
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return nil, invalidPolicy("%v", err)
	}
	for i, r := range p.Protected {
		if r.Prefix == "" {
			return nil, invalidPolicy("protected[%d]: prefix is required", i)
		}
		if err := storage.ValidatePrefix(r.Prefix); err != nil {
			return nil, invalidPolicy("protected[%d]: %v", i, err)
		}
		if r.Approvals < 0 {
			return nil, invalidPolicy("protected[%d]: approvals must not be negative", i)
		}
		for _, rep := range r.Reports {
			// A name no report can carry would make the rule unmeetable.
			if !watch.ValidReconcilerName(rep) {
				return nil, invalidPolicy("protected[%d]: reporter %q is not a reconciler's name (\"/\"-separated segments of [A-Za-z0-9._-], each starting with a letter or digit)", i, rep)
			}
		}
	}
	for i := range p.Schemas {
		r := &p.Schemas[i]
		if r.Pattern == "" {
			return nil, invalidPolicy("schemas[%d]: pattern is required", i)
		}
		if _, err := path.Match(r.Pattern, ""); err != nil {
			return nil, invalidPolicy("schemas[%d]: bad pattern %q", i, r.Pattern)
		}
		raw := []byte(r.Schema)
		switch {
		case len(raw) > 0 && r.SchemaKey != "":
			return nil, invalidPolicy("schemas[%d]: give schema or schema_key, not both", i)
		case r.SchemaKey != "":
			b, err := read(r.SchemaKey)
			if err != nil {
				return nil, invalidPolicy("schemas[%d]: schema_key %q: %v", i, r.SchemaKey, err)
			}
			if raw, err = yaml.YAMLToJSON(b); err != nil {
				return nil, invalidPolicy("schemas[%d]: schema_key %q: %v", i, r.SchemaKey, err)
			}
		case len(raw) == 0:
			return nil, invalidPolicy("schemas[%d]: schema or schema_key is required", i)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, invalidPolicy("schemas[%d]: %v", i, err)
		}
		c := jsonschema.NewCompiler()
		url := fmt.Sprintf("policy:///schemas/%d.json", i)
		if err := c.AddResource(url, doc); err != nil {
			return nil, invalidPolicy("schemas[%d]: %v", i, err)
		}
		if r.compiled, err = c.Compile(url); err != nil {
			return nil, invalidPolicy("schemas[%d]: %v", i, err)
		}
	}
	return &p, nil
}

func invalidPolicy(format string, args ...any) error {
	return gitstate.Errorf(gitstate.KindUnprocessable, "invalid_policy", "%s: "+format, append([]any{PolicyKey}, args...)...)
}

// ProtectedBy returns the rules protecting key, the implicit one for the
// server's configuration included.
func (p *Policy) ProtectedBy(key string) []ProtectedRule {
	var out []ProtectedRule
	if storage.IsReserved(key) {
		out = append(out, reservedRule)
	}
	if p == nil {
		return out
	}
	for _, r := range p.Protected {
		if strings.HasPrefix(key, r.Prefix) {
			out = append(out, r)
		}
	}
	return out
}

// Requirements sums what a change to keys needs: the most approvals any
// rule asks, and every reporter any rule names.
func (p *Policy) Requirements(keys []string) (approvals int, reporters []string, protected []string) {
	seen := map[string]bool{}
	for _, k := range keys {
		rules := p.ProtectedBy(k)
		if len(rules) > 0 {
			protected = append(protected, k)
		}
		for _, r := range rules {
			approvals = max(approvals, r.Approvals)
			for _, rep := range r.Reports {
				if !seen[rep] {
					seen[rep] = true
					reporters = append(reporters, rep)
				}
			}
		}
	}
	sort.Strings(reporters)
	return approvals, reporters, protected
}

// CheckDirect refuses a direct write on main to protected keys.
func (p *Policy) CheckDirect(keys []string) error {
	var hit []string
	for _, k := range keys {
		if len(p.ProtectedBy(k)) > 0 {
			hit = append(hit, k)
		}
	}
	if len(hit) == 0 {
		return nil
	}
	return gitstate.Errorf(gitstate.KindForbidden, "protected_prefix",
		"%d key(s) are under a protected prefix: open a transaction (POST /v1/repos/{repo}/txns), write there, get it approved and commit it", len(hit)).WithKeys(hit...)
}

// MatchPattern reports whether key matches a schema pattern: '*' and the
// other path.Match wildcards work within a segment; a '**' segment matches
// any number of segments.
func MatchPattern(pattern, key string) bool {
	return matchSegs(strings.Split(pattern, "/"), strings.Split(key, "/"))
}

func matchSegs(pat, key []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(key); i++ {
				if matchSegs(pat[1:], key[i:]) {
					return true
				}
			}
			return false
		}
		if len(key) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], key[0]); !ok {
			return false
		}
		pat, key = pat[1:], key[1:]
	}
	return len(key) == 0
}

// Validate checks a value against the schemas whose patterns match key.
// Values are JSON, or YAML for keys ending in .yaml or .yml. The error is a
// 422 schema_violation with the failing paths.
func (p *Policy) Validate(key string, value []byte) error {
	if p == nil {
		return nil
	}
	var doc any
	parsed := false
	for _, r := range p.Schemas {
		if !MatchPattern(r.Pattern, key) {
			continue
		}
		if !parsed {
			var err error
			if doc, err = parseValue(key, value); err != nil {
				// The whole value is the problem: its detail is at the
				// document's root, as a schema's own error there is.
				e := gitstate.Errorf(gitstate.KindUnprocessable, "schema_violation",
					"%s must be valid %s for its schema: %v", key, valueFormat(key), err).WithKeys(key)
				e.Details = []gitstate.Detail{{Key: key, Path: "", Message: fmt.Sprintf("not valid %s: %v", valueFormat(key), err)}}
				return e
			}
			parsed = true
		}
		if err := r.compiled.Validate(doc); err != nil {
			return schemaError(key, r.Pattern, err)
		}
	}
	return nil
}

func valueFormat(key string) string {
	if strings.HasSuffix(key, ".yaml") || strings.HasSuffix(key, ".yml") {
		return "YAML"
	}
	return "JSON"
}

func parseValue(key string, value []byte) (any, error) {
	if valueFormat(key) == "YAML" {
		j, err := yaml.YAMLToJSON(value)
		if err != nil {
			return nil, err
		}
		value = j
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(value))
}

// schemaError turns a validation error into a 422 naming each failing path.
func schemaError(key, pattern string, err error) error {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return gitstate.Errorf(gitstate.KindUnprocessable, "schema_violation", "%s: %v", key, err).WithKeys(key)
	}
	var details []gitstate.Detail
	var walk func(u jsonschema.OutputUnit)
	walk = func(u jsonschema.OutputUnit) {
		if u.Error != nil && len(u.Errors) == 0 {
			details = append(details, gitstate.Detail{Key: key, Path: u.InstanceLocation, Message: u.Error.String()})
		}
		for _, c := range u.Errors {
			walk(c)
		}
	}
	walk(*ve.BasicOutput())
	if len(details) == 0 {
		details = []gitstate.Detail{{Key: key, Path: "", Message: ve.Error()}}
	}
	first := details[0]
	where := first.Path
	if where == "" {
		where = "/"
	}
	e := gitstate.Errorf(gitstate.KindUnprocessable, "schema_violation",
		"%s does not match the schema for %s: at %s: %s", key, pattern, where, first.Message).WithKeys(key)
	e.Details = details
	return e
}

// policyCache keeps the parsed policy of each repo, keyed by the blob of
// its policy file, so that a check costs one index lookup.
type policyCache struct {
	mu      sync.Mutex
	entries map[string]policyEntry
}

type policyEntry struct {
	blob   storage.Hash
	policy *Policy
	err    error
}

// load returns the policy of repo at head (an empty policy when the repo
// has none).
// noPolicy is the policy of a repo without a policy file. Like every
// policy load returns, it is shared and must not be modified.
var noPolicy = &Policy{}

func (c *policyCache) load(ctx context.Context, repo *storage.Repo) (*Policy, error) {
	v, err := repo.Lookup(ctx, PolicyKey, 0)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return noPolicy, nil
	}
	c.mu.Lock()
	e, ok := c.entries[repo.Name()]
	c.mu.Unlock()
	if ok && e.blob == v.Blob {
		return e.policy, e.err
	}
	p, perr := ParsePolicy(v.Data, func(key string) ([]byte, error) {
		sv, err := repo.Get(ctx, key, v.Revision)
		if err != nil {
			return nil, err
		}
		return sv.Data, nil
	})
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]policyEntry{}
	}
	c.entries[repo.Name()] = policyEntry{blob: v.Blob, policy: p, err: perr}
	c.mu.Unlock()
	return p, perr
}
