package api_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/api/wire"
)

// specPath is openapi.yaml, at the root of the repository.
const specPath = "../openapi.yaml"

// wireSchemas maps each component schema that describes a wire type to that
// type. Every exported type of package wire must be here (a test checks it),
// so that a new wire type cannot be served without a schema.
var wireSchemas = map[string]reflect.Type{
	"SecretItem":              reflect.TypeFor[wire.SecretItem](),
	"SecretList":              reflect.TypeFor[wire.SecretList](),
	"RotateRequest":           reflect.TypeFor[wire.RotateRequest](),
	"RotateResult":            reflect.TypeFor[wire.RotateResult](),
	"WatchEvent":              reflect.TypeFor[wire.WatchEvent](),
	"WatchProgress":           reflect.TypeFor[wire.WatchProgress](),
	"WatchClose":              reflect.TypeFor[wire.WatchClose](),
	"CreateWebhookRequest":    reflect.TypeFor[wire.CreateWebhookRequest](),
	"Webhook":                 reflect.TypeFor[wire.Webhook](),
	"WebhookList":             reflect.TypeFor[wire.WebhookList](),
	"WebhookDelivery":         reflect.TypeFor[wire.WebhookDelivery](),
	"WebhookDeliveryList":     reflect.TypeFor[wire.WebhookDeliveryList](),
	"ReconcilerStatusRequest": reflect.TypeFor[wire.ReconcilerStatusRequest](),
	"Reconciler":              reflect.TypeFor[wire.Reconciler](),
	"ReconcilerList":          reflect.TypeFor[wire.ReconcilerList](),
	"Rollout":                 reflect.TypeFor[wire.Rollout](),
	"RevisionRef":             reflect.TypeFor[wire.Rev](),
	"Error":                   reflect.TypeFor[wire.Error](),
	"ErrorResponse":           reflect.TypeFor[wire.ErrorResponse](),
	"Health":                  reflect.TypeFor[wire.Health](),
	"Repo":                    reflect.TypeFor[wire.Repo](),
	"RepoList":                reflect.TypeFor[wire.RepoList](),
	"CreateRepoRequest":       reflect.TypeFor[wire.CreateRepoRequest](),
	"WriteResult":             reflect.TypeFor[wire.WriteResult](),
	"DeleteResult":            reflect.TypeFor[wire.DeleteResult](),
	"ListItem":                reflect.TypeFor[wire.ListItem](),
	"ListResponse":            reflect.TypeFor[wire.ListResponse](),
	"Op":                      reflect.TypeFor[wire.Op](),
	"Precondition":            reflect.TypeFor[wire.Precondition](),
	"CommitRequest":           reflect.TypeFor[wire.CommitRequest](),
	"CommitResult":            reflect.TypeFor[wire.CommitResult](),
	"Change":                  reflect.TypeFor[wire.Change](),
	"CommitInfo":              reflect.TypeFor[wire.CommitInfo](),
	"CommitList":              reflect.TypeFor[wire.CommitList](),
	"DiffChange":              reflect.TypeFor[wire.DiffChange](),
	"DiffResponse":            reflect.TypeFor[wire.DiffResponse](),
	"RevertRequest":           reflect.TypeFor[wire.RevertRequest](),
	"RollbackRequest":         reflect.TypeFor[wire.RollbackRequest](),
	"ErrorDetail":             reflect.TypeFor[wire.Detail](),
	"Duration":                reflect.TypeFor[wire.Duration](),
	"BeginTxnRequest":         reflect.TypeFor[wire.BeginTxnRequest](),
	"Approval":                reflect.TypeFor[wire.Approval](),
	"Report":                  reflect.TypeFor[wire.Report](),
	"TxnRequirements":         reflect.TypeFor[wire.TxnRequirements](),
	"Txn":                     reflect.TypeFor[wire.Txn](),
	"TxnList":                 reflect.TypeFor[wire.TxnList](),
	"ApproveRequest":          reflect.TypeFor[wire.ApproveRequest](),
	"ReportRequest":           reflect.TypeFor[wire.ReportRequest](),
	"TxnDiff":                 reflect.TypeFor[wire.TxnDiff](),
	"CreateTokenRequest":      reflect.TypeFor[wire.CreateTokenRequest](),
	"Token":                   reflect.TypeFor[wire.Token](),
	"CreatedToken":            reflect.TypeFor[wire.CreatedToken](),
	"TokenList":               reflect.TypeFor[wire.TokenList](),
	"AuditEntry":              reflect.TypeFor[wire.AuditEntry](),
	"AuditList":               reflect.TypeFor[wire.AuditList](),
	"ImportStatus":            reflect.TypeFor[wire.ImportStatus](),
	"ImportReport":            reflect.TypeFor[wire.ImportReport](),
	"ImportWarning":           reflect.TypeFor[wire.ImportWarning](),
	"UpstreamConfig":          reflect.TypeFor[wire.UpstreamConfig](),
	"Upstream":                reflect.TypeFor[wire.Upstream](),
	"UpstreamStatus":          reflect.TypeFor[wire.UpstreamStatus](),
	"UpstreamWebhookResult":   reflect.TypeFor[wire.UpstreamWebhookResult](),
	// Any JSON (json.RawMessage), as a report's details.
	"JSONValue": reflect.TypeOf(wire.Report{}.Details),
}

// spec is the part of an OpenAPI document the tests read.
type spec struct {
	OpenAPI    string                          `yaml:"openapi"`
	Security   []map[string][]string           `yaml:"security"`
	Paths      map[string]map[string]yaml.Node `yaml:"paths"`
	Components struct {
		Schemas         map[string]*schema    `yaml:"schemas"`
		SecuritySchemes map[string]yaml.Node  `yaml:"securitySchemes"`
		Parameters      map[string]*parameter `yaml:"parameters"`
	} `yaml:"components"`
}

type operation struct {
	OperationID string                 `yaml:"operationId"`
	Action      string                 `yaml:"x-gitstate-action"`
	Description string                 `yaml:"description"`
	Security    *[]map[string][]string `yaml:"security"`
	Parameters  []*parameter           `yaml:"parameters"`
	Responses   map[string]yaml.Node   `yaml:"responses"`
}

type parameter struct {
	Ref  string `yaml:"$ref"`
	Name string `yaml:"name"`
	In   string `yaml:"in"`
}

type schema struct {
	Ref        string             `yaml:"$ref"`
	Type       string             `yaml:"type"`
	Format     string             `yaml:"format"`
	Properties map[string]*schema `yaml:"properties"`
	Required   []string           `yaml:"required"`
	Items      *schema            `yaml:"items"`
	OneOf      []*schema          `yaml:"oneOf"`
}

// httpMethods are the keys of a path item that are operations.
var httpMethods = map[string]string{
	"get": http.MethodGet, "head": http.MethodHead, "put": http.MethodPut, "post": http.MethodPost,
	"delete": http.MethodDelete, "patch": http.MethodPatch, "options": http.MethodOptions, "trace": http.MethodTrace,
}

func readSpec(t *testing.T) (*spec, map[string]any) {
	t.Helper()
	b, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	var s spec
	if err := yaml.Unmarshal(b, &s); err != nil {
		t.Fatalf("parse %s: %v", specPath, err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parse %s: %v", specPath, err)
	}
	if !strings.HasPrefix(s.OpenAPI, "3.1") {
		t.Fatalf("openapi: %q, want 3.1.x", s.OpenAPI)
	}
	return &s, doc
}

// specOperation is one operation of the spec, with the parameters of its
// path item.
type specOperation struct {
	operation
	method, path string
	pathParams   []*parameter
}

func operations(t *testing.T, s *spec) []specOperation {
	t.Helper()
	var out []specOperation
	for path, item := range s.Paths {
		var shared []*parameter
		if n, ok := item["parameters"]; ok {
			if err := n.Decode(&shared); err != nil {
				t.Fatalf("%s parameters: %v", path, err)
			}
		}
		for key, n := range item {
			method, ok := httpMethods[key]
			if !ok {
				continue
			}
			var op operation
			if err := n.Decode(&op); err != nil {
				t.Fatalf("%s %s: %v", key, path, err)
			}
			out = append(out, specOperation{operation: op, method: method, path: path, pathParams: shared})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].path+" "+out[i].method < out[j].path+" "+out[j].method
	})
	return out
}

// TestOpenAPIRoutes checks that openapi.yaml specifies exactly the routes
// the server serves, and that each operation is documented as served.
func TestOpenAPIRoutes(t *testing.T) {
	s, _ := readSpec(t)
	routes := map[string]api.Route{}
	for _, rt := range api.New(api.Options{}).Routes() {
		if rt.Git {
			// Git's smart HTTP protocol, specified by Git (docs/GIT.md);
			// only /git/ may hold such routes.
			if !strings.HasPrefix(rt.Path, "/git/") {
				t.Errorf("%s %s: a Git protocol route outside /git/", rt.Method, rt.Path)
			}
			continue
		}
		routes[rt.Method+" "+rt.Path] = rt
	}
	ops := map[string]specOperation{}
	for _, op := range operations(t, s) {
		ops[op.method+" "+op.path] = op
	}
	var served, specified []string
	for k := range routes {
		if _, ok := ops[k]; !ok {
			served = append(served, k)
		}
	}
	for k := range ops {
		if _, ok := routes[k]; !ok {
			specified = append(specified, k)
		}
	}
	slices.Sort(served)
	slices.Sort(specified)
	if len(served) > 0 {
		t.Errorf("served but not in %s:\n\t%s", specPath, strings.Join(served, "\n\t"))
	}
	if len(specified) > 0 {
		t.Errorf("in %s but not served:\n\t%s", specPath, strings.Join(specified, "\n\t"))
	}

	ids := map[string]string{}
	for k, op := range ops {
		rt, ok := routes[k]
		if !ok {
			continue
		}
		if op.OperationID == "" {
			t.Errorf("%s: no operationId", k)
		} else if prev, dup := ids[op.OperationID]; dup {
			t.Errorf("%s: operationId %q is also %s's", k, op.OperationID, prev)
		}
		ids[op.OperationID] = k
		if op.Action != rt.Action {
			t.Errorf("%s: x-gitstate-action %q, the route's action is %q", k, op.Action, rt.Action)
		}
		if strings.TrimSpace(op.Description) == "" {
			t.Errorf("%s: no description", k)
		}
		if len(op.Responses) == 0 {
			t.Errorf("%s: no responses", k)
		}
		// Open routes let anonymous callers in; the others need the
		// document's bearer scheme.
		anonymous := false
		if op.Security != nil {
			anonymous = len(*op.Security) == 0 || slices.ContainsFunc(*op.Security, func(r map[string][]string) bool { return len(r) == 0 })
		}
		if anonymous != rt.Open {
			t.Errorf("%s: the spec lets anonymous callers in: %v; the route is open: %v", k, anonymous, rt.Open)
		}
	}
	if len(s.Security) == 0 {
		t.Errorf("no document-wide security requirement")
	}
	for _, req := range s.Security {
		for name := range req {
			if _, ok := s.Components.SecuritySchemes[name]; !ok {
				t.Errorf("security requirement %q has no security scheme", name)
			}
		}
	}
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

// TestOpenAPIPathParameters checks that every {name} of a path is declared
// as a path parameter, and that every path parameter is in the path.
func TestOpenAPIPathParameters(t *testing.T) {
	s, _ := readSpec(t)
	resolve := func(p *parameter) *parameter {
		if p.Ref == "" {
			return p
		}
		name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/")
		if !ok || s.Components.Parameters[name] == nil {
			t.Fatalf("parameter $ref %q does not resolve", p.Ref)
		}
		return s.Components.Parameters[name]
	}
	for _, op := range operations(t, s) {
		declared := map[string]bool{}
		for _, p := range slices.Concat(op.pathParams, op.Parameters) {
			if p := resolve(p); p.In == "path" {
				declared[p.Name] = true
			}
		}
		inPath := map[string]bool{}
		for _, m := range pathParam.FindAllStringSubmatch(op.path, -1) {
			inPath[m[1]] = true
			if !declared[m[1]] {
				t.Errorf("%s %s: path parameter %q is not declared", op.method, op.path, m[1])
			}
		}
		for name := range declared {
			if !inPath[name] {
				t.Errorf("%s %s: declares path parameter %q, not in the path", op.method, op.path, name)
			}
		}
	}
}

// TestOpenAPIRefs checks that every $ref of the document resolves.
func TestOpenAPIRefs(t *testing.T) {
	_, doc := readSpec(t)
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "$ref" {
					ref, _ := x.(string)
					if !resolves(doc, ref) {
						t.Errorf("%s: $ref %q does not resolve", at, ref)
					}
					continue
				}
				walk(x, at+"/"+k)
			}
		case []any:
			for i, x := range v {
				walk(x, fmt.Sprintf("%s/%d", at, i))
			}
		}
	}
	walk(doc, "#")
}

func resolves(doc map[string]any, ref string) bool {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	var v any = doc
	for seg := range strings.SplitSeq(p, "/") {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		seg = strings.NewReplacer("~1", "/", "~0", "~").Replace(seg)
		if v, ok = m[seg]; !ok {
			return false
		}
	}
	return true
}

// TestOpenAPIWireSchemas checks that each schema of a wire type has exactly
// the JSON fields of the Go struct, with matching types, and that its
// required fields are the ones always sent (no omitempty).
func TestOpenAPIWireSchemas(t *testing.T) {
	s, _ := readSpec(t)
	schemaOf := map[reflect.Type]string{}
	for name, typ := range wireSchemas {
		schemaOf[typ] = name
	}
	for name, typ := range wireSchemas {
		t.Run(name, func(t *testing.T) {
			sc := s.Components.Schemas[name]
			if sc == nil {
				t.Fatalf("components/schemas has no %s (for wire.%s)", name, typ.Name())
			}
			if typ.Kind() != reflect.Struct {
				return
			}
			if sc.Type != "object" {
				t.Errorf("type %q, want object", sc.Type)
			}
			fields := jsonFields(typ)
			var missing, extra []string
			for f := range fields {
				if _, ok := sc.Properties[f]; !ok {
					missing = append(missing, f)
				}
			}
			for p := range sc.Properties {
				if _, ok := fields[p]; !ok {
					extra = append(extra, p)
				}
			}
			slices.Sort(missing)
			slices.Sort(extra)
			if len(missing) > 0 {
				t.Errorf("wire.%s fields not in the schema: %v", typ.Name(), missing)
			}
			if len(extra) > 0 {
				t.Errorf("schema properties not in wire.%s: %v", typ.Name(), extra)
			}
			for _, r := range sc.Required {
				if _, ok := sc.Properties[r]; !ok {
					t.Errorf("required %q is not a property", r)
				}
			}
			for f, sf := range fields {
				prop, ok := sc.Properties[f]
				if !ok {
					continue
				}
				if err := checkType(prop, sf.Type, schemaOf); err != nil {
					t.Errorf("%s: %v", f, err)
				}
				// A field always sent is required in responses; requests
				// need only what the handler insists on.
				if !strings.HasSuffix(name, "Request") && !isRequest(name) {
					if required := slices.Contains(sc.Required, f); required != !omitempty(sf) {
						t.Errorf("%s: required %v, but the field is always sent: %v", f, required, !omitempty(sf))
					}
				}
			}
		})
	}
}

// isRequest reports whether a schema describes only a part of a request.
func isRequest(name string) bool { return name == "Op" || name == "Precondition" }

func jsonFields(typ reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	promoted := map[string]reflect.StructField{}
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		// As encoding/json does, an embedded struct without a JSON name
		// contributes its fields, which the outer ones shadow.
		if et := f.Type; f.Anonymous && name == "" {
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				maps.Copy(promoted, jsonFields(et))
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	for name, f := range promoted {
		if _, ok := out[name]; !ok {
			out[name] = f
		}
	}
	return out
}

func omitempty(f reflect.StructField) bool {
	_, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
	return slices.Contains(strings.Split(opts, ","), "omitempty") || slices.Contains(strings.Split(opts, ","), "omitzero")
}

// checkType reports whether a schema describes values of a Go type as
// encoding/json writes them.
func checkType(sc *schema, typ reflect.Type, schemaOf map[reflect.Type]string) error {
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if name, ok := schemaOf[typ]; ok {
		if want := "#/components/schemas/" + name; sc.Ref != want {
			return fmt.Errorf("$ref %q, want %q (wire.%s)", sc.Ref, want, typ.Name())
		}
		return nil
	}
	want := ""
	switch {
	case typ == reflect.TypeFor[time.Time]():
		if sc.Type != "string" || sc.Format != "date-time" {
			return fmt.Errorf("type %q format %q, want string date-time", sc.Type, sc.Format)
		}
		return nil
	case typ.Kind() == reflect.String:
		want = "string"
	case typ.Kind() == reflect.Bool:
		want = "boolean"
	case typ.Kind() >= reflect.Int && typ.Kind() <= reflect.Uint64:
		want = "integer"
	case typ.Kind() == reflect.Float32 || typ.Kind() == reflect.Float64:
		want = "number"
	case typ.Kind() == reflect.Slice:
		if sc.Type != "array" || sc.Items == nil {
			return fmt.Errorf("type %q, want array with items", sc.Type)
		}
		return checkType(sc.Items, typ.Elem(), schemaOf)
	case typ.Kind() == reflect.Map:
		want = "object"
	default:
		return fmt.Errorf("no schema for Go type %s: add it to wireSchemas", typ)
	}
	if sc.Type != want {
		return fmt.Errorf("type %q, want %q (Go %s)", sc.Type, want, typ)
	}
	return nil
}

// TestOpenAPIWireTypesCovered checks that every exported type of package
// wire has a schema in wireSchemas.
func TestOpenAPIWireTypesCovered(t *testing.T) {
	covered := map[string]bool{}
	for _, typ := range wireSchemas {
		covered[typ.Name()] = true
	}
	files, err := filepath.Glob("wire/*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, sp := range gd.Specs {
				ts := sp.(*ast.TypeSpec)
				if ts.Name.IsExported() && !covered[ts.Name.Name] {
					t.Errorf("%s: wire.%s has no schema in openapi.yaml (map it in wireSchemas)", fset.Position(ts.Pos()), ts.Name.Name)
				}
			}
		}
	}
}
