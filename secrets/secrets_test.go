package secrets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/gitstate/gitstate"
)

// newTestEngine returns an engine whose key file is in a temporary
// directory.
func newTestEngine(t *testing.T, opts Options) *Engine {
	t.Helper()
	if opts.KeyFile == "" {
		opts.KeyFile = filepath.Join(t.TempDir(), KeyFileName)
	}
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// writeIdentity writes a key file holding a new identity and returns its
// path and recipient.
func writeIdentity(t *testing.T) (string, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other.key")
	if err := os.WriteFile(path, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, id.Recipient().String()
}

// sopsSection decodes a document's sops section.
func sopsSection(t *testing.T, doc []byte) map[string]any {
	t.Helper()
	var d struct {
		Data string         `json:"data"`
		Sops map[string]any `json:"sops"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatalf("document is not JSON: %v\n%s", err, doc)
	}
	if !strings.HasPrefix(d.Data, "ENC[AES256_GCM,") {
		t.Fatalf("data is not encrypted: %s", doc)
	}
	return d.Sops
}

func ageRecipients(t *testing.T, doc []byte) []string {
	t.Helper()
	var out []string
	ages, _ := sopsSection(t, doc)["age"].([]any)
	for _, a := range ages {
		out = append(out, a.(map[string]any)["recipient"].(string))
	}
	return out
}

var ctx = context.Background()

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFileName)
	e := newTestEngine(t, Options{KeyFile: path})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if !strings.HasPrefix(e.Recipient(), "age1") {
		t.Errorf("recipient %q", e.Recipient())
	}
	// A restart keeps the identity.
	e2 := newTestEngine(t, Options{KeyFile: path})
	if e2.Recipient() != e.Recipient() {
		t.Errorf("recipient changed across restarts: %s, %s", e.Recipient(), e2.Recipient())
	}
	doc, err := e.Encrypt(ctx, "a.sops.json", []byte("v"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := e2.Decrypt(ctx, "a.sops.json", doc); err != nil || string(p) != "v" {
		t.Errorf("decrypt after restart: %q, %v", p, err)
	}
	// A key file that is not one.
	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("AGE-SECRET-KEY-1 not really\n"), 0o600)
	if _, err := New(Options{KeyFile: bad}); err == nil || strings.Contains(err.Error(), "not really") {
		t.Errorf("bad key file: %v", err)
	}
}

func TestEncryptDecrypt(t *testing.T) {
	e := newTestEngine(t, Options{CacheEntries: -1})
	for _, plain := range [][]byte{
		[]byte("hunter2"),
		[]byte("line one\nline two\n"),
		{0, 1, 2, 0xff, 0xfe, '"', '\\'},
		bytes.Repeat([]byte("x"), 100<<10),
	} {
		doc, err := e.Encrypt(ctx, "k.sops.json", plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(doc, plain) {
			t.Fatalf("document holds the plaintext")
		}
		if got := ageRecipients(t, doc); len(got) != 1 || got[0] != e.Recipient() {
			t.Errorf("recipients %v, want the server's", got)
		}
		if err := CheckDocument("k.sops.json", doc); err != nil {
			t.Errorf("CheckDocument of our own document: %v", err)
		}
		got, err := e.Decrypt(ctx, "k.sops.json", doc)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("decrypt: %q, %v", got, err)
		}
		again, err := e.Encrypt(ctx, "k.sops.json", plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(again, doc) {
			t.Errorf("two encryptions of one plaintext are equal: SOPS output must be randomized")
		}
		if same, err := e.Equal(ctx, "k.sops.json", again, plain); err != nil || !same {
			t.Errorf("Equal: %v, %v", same, err)
		}
		if same, _ := e.Equal(ctx, "k.sops.json", again, append([]byte("x"), plain...)); same {
			t.Errorf("Equal of another plaintext")
		}
	}
	if _, err := e.Encrypt(ctx, "k.sops.json", nil, nil); !errors.Is(err, gitstate.ErrInvalidRequest) {
		t.Errorf("empty secret: %v, want invalid_request", err)
	}
}

func TestTamperedDocument(t *testing.T) {
	e := newTestEngine(t, Options{CacheEntries: -1})
	secret := []byte("correct horse battery staple")
	doc, err := e.Encrypt(ctx, "k.sops.json", secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Another document's value under this document's data key and MAC.
	other, err := e.Encrypt(ctx, "k.sops.json", []byte("something else entirely"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var d, o map[string]any
	json.Unmarshal(doc, &d)
	json.Unmarshal(other, &o)
	d["data"] = o["data"]
	swapped, _ := json.Marshal(d)
	_, err = e.Decrypt(ctx, "k.sops.json", swapped)
	var ge *gitstate.Error
	if !errors.As(err, &ge) || ge.Code != "secret_not_decryptable" {
		t.Fatalf("swapped value: %v, want secret_not_decryptable", err)
	}
	// The MAC: drop it.
	json.Unmarshal(doc, &d)
	d["sops"].(map[string]any)["mac"] = "ENC[AES256_GCM,data:AAAA,iv:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]"
	bad, _ := json.Marshal(d)
	_, err = e.Decrypt(ctx, "k.sops.json", bad)
	if !errors.As(err, &ge) || ge.Code != "secret_not_decryptable" {
		t.Fatalf("bad MAC: %v, want secret_not_decryptable", err)
	}
	if strings.Contains(err.Error(), string(secret)) || strings.Contains(err.Error(), "something else") {
		t.Errorf("error quotes a plaintext: %v", err)
	}
	// A document for a key this server does not hold.
	otherKey, _ := writeIdentity(t)
	stranger := newTestEngine(t, Options{KeyFile: otherKey})
	_, err = stranger.Decrypt(ctx, "k.sops.json", doc)
	if !errors.As(err, &ge) || ge.Code != "secret_not_decryptable" || ge.Kind != gitstate.KindUnprocessable {
		t.Fatalf("foreign document: %v", err)
	}
	if !strings.Contains(err.Error(), e.Recipient()) {
		t.Errorf("error should name the recipient it could not use: %v", err)
	}
}

func TestCheckDocument(t *testing.T) {
	e := newTestEngine(t, Options{})
	secret := "s3cr3t-value-do-not-echo"
	good, err := e.Encrypt(ctx, "a.sops.json", []byte(secret), nil)
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(d map[string]any)) []byte {
		var d map[string]any
		if err := json.Unmarshal(good, &d); err != nil {
			t.Fatal(err)
		}
		f(d)
		b, _ := json.Marshal(d)
		return b
	}
	plainData := mutate(func(d map[string]any) { d["data"] = secret })
	extraPlain := mutate(func(d map[string]any) { d["password"] = secret })
	suffixed := mutate(func(d map[string]any) { d["note_unencrypted"] = "visible by design" })
	noKeys := mutate(func(d map[string]any) { delete(d["sops"].(map[string]any), "age") })
	noMAC := mutate(func(d map[string]any) { delete(d["sops"].(map[string]any), "mac") })
	// Values SOPS would have encrypted that are not strings (SOPS's walk
	// gives no place for them): the error names their place all the same.
	number := mutate(func(d map[string]any) { d["num"] = 12345 })
	boolean := mutate(func(d map[string]any) { d["flag"] = true })
	nestedNumber := mutate(func(d map[string]any) { d["nested"] = map[string]any{"a": 1.5} })
	listNumber := mutate(func(d map[string]any) { d["list"] = []any{7} })
	plainNumber := mutate(func(d map[string]any) { d["nested"] = map[string]any{"a": secret} })
	suffixedNumber := mutate(func(d map[string]any) { d["num_unencrypted"] = 12345 })

	for _, tc := range []struct {
		name string
		doc  []byte
		ok   bool
		msg  string // a part of the error's message
	}{
		{"ours", good, true, ""},
		{"unencrypted suffix", suffixed, true, ""},
		{"plaintext", []byte(secret), false, ""},
		{"plaintext json", []byte(`{"password": "` + secret + `"}`), false, ""},
		{"not json", []byte(`{"password": ` + secret), false, ""},
		{"empty sops", []byte(`{"data": "` + secret + `", "sops": {}}`), false, ""},
		{"plaintext data", plainData, false, "the value at data is not encrypted"},
		{"extra plaintext value", extraPlain, false, "the value at password is not encrypted"},
		{"no master key", noKeys, false, ""},
		{"no mac", noMAC, false, ""},
		{"array", []byte(`["` + secret + `"]`), false, ""},
		{"top-level number", number, false, "the value at num is not encrypted"},
		{"top-level boolean", boolean, false, "the value at flag is not encrypted"},
		{"nested number", nestedNumber, false, "the value at nested:a is not encrypted"},
		{"number in a list", listNumber, false, "the value at list is not encrypted"},
		{"nested plaintext", plainNumber, false, "the value at nested:a is not encrypted"},
		{"unencrypted number", suffixedNumber, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckDocument("a.sops.json", tc.doc)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ge *gitstate.Error
			if !errors.As(err, &ge) || ge.Code != "not_encrypted" || ge.Kind != gitstate.KindUnprocessable {
				t.Fatalf("got %v, want 422 not_encrypted", err)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "12345") {
				t.Errorf("error echoes the value: %v", err)
			}
			if !strings.Contains(ge.Message, tc.msg) {
				t.Errorf("message %q, want %q in it", ge.Message, tc.msg)
			}
		})
	}
}

func TestNaming(t *testing.T) {
	if PathOf("apps/web/db") != "apps/web/db.sops.json" {
		t.Error(PathOf("apps/web/db"))
	}
	for path, want := range map[string]string{
		"apps/web/db.sops.json": "apps/web/db",
		"x.sops.json":           "x",
		".sops.json":            "",
		"a/.sops.json":          "",
		"a.json":                "",
		"a.sops.json/b":         "",
	} {
		k, ok := KeyOf(path)
		if k != want || ok != (want != "") {
			t.Errorf("KeyOf(%q) = %q, %v; want %q", path, k, ok, want)
		}
	}
	if err := ValidateKey("a.sops.json"); err == nil {
		t.Error("a key ending in .sops.json is accepted")
	}
}

func TestParseConfig(t *testing.T) {
	_, r1 := writeIdentity(t)
	_, r2 := writeIdentity(t)
	for _, tc := range []struct {
		name, doc string
		ok        bool
	}{
		{"empty", ``, true},
		{"flat", "creation_rules:\n  - prefix: prod/\n    age: " + r1 + "," + r2 + "\n", true},
		{"list", "creation_rules:\n  - path_regex: ^prod/.*\n    age: [" + r1 + "]\n", true},
		{"vault", "creation_rules:\n  - hc_vault_transit_uri: http://127.0.0.1:8200/v1/transit/keys/k\n", true},
		{"groups", "creation_rules:\n  - key_groups:\n      - age: [" + r1 + "]\n      - age: [" + r2 + "]\n    shamir_threshold: 1\n", true},
		{"bad recipient", "creation_rules:\n  - age: age1notarecipient\n", false},
		{"bad regex", "creation_rules:\n  - path_regex: '('\n", false},
		{"kms", "creation_rules:\n  - kms: arn:aws:kms:x\n", false},
		{"both", "creation_rules:\n  - age: " + r1 + "\n    key_groups:\n      - age: [" + r2 + "]\n", false},
		{"threshold", "creation_rules:\n  - key_groups:\n      - age: [" + r1 + "]\n      - age: [" + r2 + "]\n    shamir_threshold: 3\n", false},
		{"empty group", "creation_rules:\n  - key_groups:\n      - age: [" + r1 + "]\n      - {}\n", false},
		{"bad vault uri", "creation_rules:\n  - hc_vault_transit_uri: ftp://x/v1/transit/keys/k\n", false},
		{"not yaml", "creation_rules: [", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.doc))
			if tc.ok != (err == nil) {
				t.Fatalf("ParseConfig: %v, want ok=%v", err, tc.ok)
			}
			var ge *gitstate.Error
			if err != nil && (!errors.As(err, &ge) || ge.Code != "invalid_sops_config") {
				t.Errorf("error %v, want invalid_sops_config", err)
			}
		})
	}
	// A server without Vault refuses a Vault recipient.
	e := newTestEngine(t, Options{})
	if _, err := e.ParseConfig([]byte("creation_rules:\n  - hc_vault_transit_uri: transit/keys/k\n")); err == nil {
		t.Error("a Vault recipient is accepted by a server without Vault")
	}
	// One with Vault refuses another server's keys.
	ev := newTestEngine(t, Options{VaultAddr: "http://127.0.0.1:8200", VaultToken: "t"})
	if _, err := ev.ParseConfig([]byte("creation_rules:\n  - hc_vault_transit_uri: http://vault.example:8200/v1/transit/keys/k\n")); err == nil {
		t.Error("another Vault's key is accepted")
	}
	if _, err := ev.ParseConfig([]byte("creation_rules:\n  - hc_vault_transit_uri: transit/keys/k\n")); err != nil {
		t.Errorf("a relative Vault key: %v", err)
	}
}

func TestRulesAndReencrypt(t *testing.T) {
	e := newTestEngine(t, Options{})
	otherKey, other := writeIdentity(t)
	reader := newTestEngine(t, Options{KeyFile: otherKey, CacheEntries: -1})
	cfg, err := ParseConfig([]byte("creation_rules:\n  - prefix: prod/\n    age: " + other + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("prod password")
	doc, err := e.Encrypt(ctx, "prod/db.sops.json", secret, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := ageRecipients(t, doc)
	if len(got) != 2 || got[0] != e.Recipient() || got[1] != other {
		t.Fatalf("recipients %v, want the server's and %s", got, other)
	}
	if p, err := reader.Decrypt(ctx, "prod/db.sops.json", doc); err != nil || !bytes.Equal(p, secret) {
		t.Fatalf("the rule's recipient cannot decrypt: %q %v", p, err)
	}
	// Outside the prefix: the server's key only.
	if d, _ := e.Encrypt(ctx, "dev/db.sops.json", secret, cfg); len(ageRecipients(t, d)) != 1 {
		t.Errorf("dev recipients: %v", ageRecipients(t, d))
	}

	// The rule drops the other recipient. Keeping the data key only
	// re-wraps it; a new one locks the removed recipient out.
	none := &Config{}
	same, changed, err := e.Reencrypt(ctx, "prod/db.sops.json", doc, cfg, false)
	if err != nil || changed || !bytes.Equal(same, doc) {
		t.Fatalf("re-wrap to the same recipients: changed=%v err=%v", changed, err)
	}
	rewrapped, changed, err := e.Reencrypt(ctx, "prod/db.sops.json", doc, none, false)
	if err != nil || !changed {
		t.Fatalf("re-wrap: changed=%v err=%v", changed, err)
	}
	if got := ageRecipients(t, rewrapped); len(got) != 1 || got[0] != e.Recipient() {
		t.Errorf("re-wrapped recipients %v", got)
	}
	var a, b map[string]any
	json.Unmarshal(doc, &a)
	json.Unmarshal(rewrapped, &b)
	if a["data"] != b["data"] {
		t.Errorf("keeping the data key changed the value's ciphertext")
	}
	if _, err := reader.Decrypt(ctx, "prod/db.sops.json", rewrapped); err == nil {
		t.Errorf("a removed recipient decrypts the re-wrapped document")
	}
	rotated, changed, err := e.Reencrypt(ctx, "prod/db.sops.json", doc, none, true)
	if err != nil || !changed {
		t.Fatalf("rotate: changed=%v err=%v", changed, err)
	}
	json.Unmarshal(rotated, &b)
	if a["data"] == b["data"] {
		t.Errorf("a new data key left the value's ciphertext as it was")
	}
	if p, err := e.Decrypt(ctx, "prod/db.sops.json", rotated); err != nil || !bytes.Equal(p, secret) {
		t.Errorf("rotated: %q %v", p, err)
	}
	if _, err := reader.Decrypt(ctx, "prod/db.sops.json", rotated); err == nil {
		t.Errorf("a removed recipient decrypts the rotated document")
	}
	if err := CheckDocument("prod/db.sops.json", rotated); err != nil {
		t.Errorf("rotated document: %v", err)
	}

	// Key groups: the data key is split; each group holds the server's key.
	groups, err := ParseConfig([]byte("creation_rules:\n  - key_groups:\n      - age: [" + other + "]\n      - age: [" + other + "]\n"))
	if err != nil {
		t.Fatal(err)
	}
	gdoc, err := e.Encrypt(ctx, "g.sops.json", secret, groups)
	if err != nil {
		t.Fatal(err)
	}
	if kg, _ := sopsSection(t, gdoc)["key_groups"].([]any); len(kg) != 2 {
		t.Errorf("key_groups: %v", sopsSection(t, gdoc))
	}
	e.Forget()
	if p, err := e.Decrypt(ctx, "g.sops.json", gdoc); err != nil || !bytes.Equal(p, secret) {
		t.Errorf("key groups: %q %v", p, err)
	}
}

func TestCache(t *testing.T) {
	e := newTestEngine(t, Options{CacheEntries: 3, CacheMaxValue: 16})
	var docs [][]byte
	for i := range 5 {
		d, err := e.Encrypt(ctx, "k.sops.json", []byte{'v', byte('0' + i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d)
	}
	if n := e.cache.len(); n != 3 {
		t.Errorf("cache holds %d entries, want its bound 3", n)
	}
	if _, err := e.Encrypt(ctx, "k.sops.json", bytes.Repeat([]byte("x"), 17), nil); err != nil {
		t.Fatal(err)
	}
	if n := e.cache.len(); n != 3 {
		t.Errorf("a value over the size bound was cached (%d entries)", n)
	}
	// A cached plaintext is a copy: changing it changes nothing.
	p, _ := e.Decrypt(ctx, "k.sops.json", docs[4])
	p[0] = 'X'
	if p2, _ := e.Decrypt(ctx, "k.sops.json", docs[4]); p2[0] != 'v' {
		t.Errorf("the cache returned its own slice")
	}
	e.Forget()
	if n := e.cache.len(); n != 0 {
		t.Errorf("Forget left %d entries", n)
	}
	if p, err := e.Decrypt(ctx, "k.sops.json", docs[0]); err != nil || string(p) != "v0" {
		t.Errorf("decrypt after Forget: %q %v", p, err)
	}
}
