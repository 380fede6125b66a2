package secrets

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"filippo.io/age"
	"sigs.k8s.io/yaml"

	"github.com/gitstate/gitstate"
)

// ConfigKey is where a repo keeps its secrets' recipients. Like every key
// under .gitstate/, it changes only through a transaction, and only an
// administrator may write it.
const ConfigKey = ".gitstate/sops.yaml"

// Config is a repo's .gitstate/sops.yaml: creation rules in the spirit of
// SOPS's own .sops.yaml. The first rule that matches a secret's tree path
// (<key>.sops.json) gives its recipients; with no matching rule (or no
// file) the server's own age key is the only recipient.
//
//	creation_rules:
//	  - prefix: prod/
//	    age: age1...,age1...
//	    hc_vault_transit_uri: transit/keys/prod
//	  - path_regex: ^team-a/.*
//	    key_groups:
//	      - age: [age1...]
//	      - hc_vault: [http://127.0.0.1:8200/v1/transit/keys/team-a]
//	    shamir_threshold: 2
//
// Whatever a rule says, the server can always decrypt what it writes: its
// own age recipient is added to every key group that holds no Vault
// transit key of the server's Vault.
type Config struct {
	CreationRules []Rule `json:"creation_rules"`
}

// Rule is one creation rule. A rule matches a tree path when the path
// starts with Prefix and matches PathRegex (each, when given); a rule with
// neither matches every path. Recipients are given flat (Age,
// HCVaultTransitURI: one key group) or as KeyGroups (the data key is then
// split with Shamir's scheme, ShamirThreshold groups, default all, being
// needed to decrypt), not both.
type Rule struct {
	PathRegex string `json:"path_regex,omitempty"`
	Prefix    string `json:"prefix,omitempty"`
	// Age recipients (age1...), a list or a comma-separated string.
	Age StringList `json:"age,omitempty"`
	// HCVaultTransitURI names Vault transit keys: a full URI
	// (http://vault:8200/v1/transit/keys/name) on the server's Vault, or a
	// path relative to it (transit/keys/name).
	HCVaultTransitURI StringList `json:"hc_vault_transit_uri,omitempty"`
	KeyGroups         []KeyGroup `json:"key_groups,omitempty"`
	ShamirThreshold   int        `json:"shamir_threshold,omitempty"`

	re *regexp.Regexp
}

// KeyGroup is one group of master keys, each able to decrypt the group's
// part of the data key.
type KeyGroup struct {
	Age     []string `json:"age,omitempty"`
	HCVault []string `json:"hc_vault,omitempty"`
}

// StringList is a list of strings in YAML or JSON: a list, or one string
// of comma-separated items (as SOPS's .sops.yaml takes them).
type StringList []string

// UnmarshalJSON accepts ["a", "b"] or "a,b".
func (l *StringList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = nil
		for part := range strings.SplitSeq(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				*l = append(*l, part)
			}
		}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("must be a string or a list of strings")
	}
	*l = list
	return nil
}

// ParseConfig parses and checks a .gitstate/sops.yaml document: its
// regular expressions compile, its age recipients parse, its Vault URIs
// are well formed. It does not check that the Vault keys are usable by a
// server (Engine.ParseConfig does). Unknown fields (kms, pgp, ...: key
// sources gitstate does not support) are errors.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, invalidConfig("%v", err)
	}
	for i := range c.CreationRules {
		r := &c.CreationRules[i]
		if r.PathRegex != "" {
			re, err := regexp.Compile(r.PathRegex)
			if err != nil {
				return nil, invalidConfig("creation_rules[%d]: path_regex: %v", i, err)
			}
			r.re = re
		}
		flat := len(r.Age) > 0 || len(r.HCVaultTransitURI) > 0
		if flat && len(r.KeyGroups) > 0 {
			return nil, invalidConfig("creation_rules[%d]: give age/hc_vault_transit_uri or key_groups, not both", i)
		}
		if r.ShamirThreshold < 0 || r.ShamirThreshold > len(r.KeyGroups) || (r.ShamirThreshold > 0 && len(r.KeyGroups) < 2) {
			return nil, invalidConfig("creation_rules[%d]: shamir_threshold must be from 1 to the number of key groups (at least 2)", i)
		}
		groups := r.KeyGroups
		if flat {
			groups = []KeyGroup{{Age: r.Age, HCVault: r.HCVaultTransitURI}}
		}
		for g, kg := range groups {
			if len(kg.Age) == 0 && len(kg.HCVault) == 0 && len(r.KeyGroups) > 0 {
				return nil, invalidConfig("creation_rules[%d]: key_groups[%d] is empty", i, g)
			}
			for _, a := range kg.Age {
				if _, err := age.ParseX25519Recipient(a); err != nil {
					return nil, invalidConfig("creation_rules[%d]: age recipient %q: %v", i, a, err)
				}
			}
			for _, u := range kg.HCVault {
				if _, err := parseVaultURI(u, ""); err != nil {
					return nil, invalidConfig("creation_rules[%d]: %v", i, err)
				}
			}
		}
	}
	return &c, nil
}

func invalidConfig(format string, args ...any) error {
	return gitstate.Errorf(gitstate.KindUnprocessable, "invalid_sops_config", "%s: "+format, append([]any{ConfigKey}, args...)...).WithKeys(ConfigKey)
}

// Match reports whether the rule applies to a tree path.
func (r *Rule) Match(path string) bool {
	if r.Prefix != "" && !strings.HasPrefix(path, r.Prefix) {
		return false
	}
	return r.re == nil || r.re.MatchString(path)
}

// RuleFor returns the first rule matching a tree path, or nil (the server's
// own key only). A nil Config has no rules.
func (c *Config) RuleFor(path string) *Rule {
	if c == nil {
		return nil
	}
	for i := range c.CreationRules {
		if c.CreationRules[i].Match(path) {
			return &c.CreationRules[i]
		}
	}
	return nil
}

// groups returns the rule's key groups (one for flat recipients) and its
// Shamir threshold.
func (r *Rule) groups() ([]KeyGroup, int) {
	if r == nil {
		return []KeyGroup{{}}, 0
	}
	if len(r.KeyGroups) > 0 {
		return r.KeyGroups, r.ShamirThreshold
	}
	return []KeyGroup{{Age: r.Age, HCVault: r.HCVaultTransitURI}}, 0
}

// vaultKey is a Vault transit key: the server's address, the engine's
// mount path and the key's name.
type vaultKey struct {
	addr, engine, name string
}

func (k vaultKey) String() string { return k.addr + "/v1/" + k.engine + "/keys/" + k.name }

// vaultURIPattern is what follows the address in a transit key's URI.
var vaultURIPattern = regexp.MustCompile(`^/?v1/([^/]+(?:/[^/]+)*)/keys/([^/]+)$`)

// parseVaultURI parses a transit key URI: a full one
// (http://host:8200/v1/transit/keys/name) or, when addr is given, one
// relative to it (transit/keys/name). With addr, a full URI must name that
// same server.
func parseVaultURI(uri, addr string) (vaultKey, error) {
	bad := func(why string) (vaultKey, error) {
		return vaultKey{}, fmt.Errorf("hc_vault %q: %s", uri, why)
	}
	scheme, rest, full := strings.Cut(uri, "://")
	var host, p string
	if full {
		if scheme != "http" && scheme != "https" {
			return bad("scheme must be http or https")
		}
		h, path, _ := strings.Cut(rest, "/")
		if h == "" {
			return bad("no host")
		}
		host, p = scheme+"://"+h, "/"+path
	} else {
		p = "/v1/" + strings.TrimPrefix(uri, "/")
	}
	m := vaultURIPattern.FindStringSubmatch(p)
	if m == nil {
		return bad("want http(s)://<vault>/v1/<transit mount>/keys/<name>, or <transit mount>/keys/<name> on the server's Vault")
	}
	k := vaultKey{addr: host, engine: m[1], name: m[2]}
	if addr != "" {
		if !full {
			k.addr = addr
		} else if normalizeAddr(host) != addr {
			return bad("names another Vault than the server's (" + addr + ")")
		}
	}
	return k, nil
}

// normalizeAddr returns a Vault address as scheme://host[:port], without
// a trailing slash.
func normalizeAddr(a string) string { return strings.TrimRight(strings.TrimSpace(a), "/") }
