package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
	"github.com/gitstate/gitstate/secrets"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/txn"
)

// exampleServer runs the real API over a store in a temporary directory
// and returns its URL and a function that stops it. In real use the server
// is a separate "gitstate serve" process.
func exampleServer() (url string, stop func()) {
	dir, err := os.MkdirTemp("", "gitstate-example-")
	if err != nil {
		log.Fatal(err)
	}
	st, err := storage.Open(context.Background(), dir, storage.Options{})
	if err != nil {
		log.Fatal(err)
	}
	txns := txn.NewManager(st, txn.Options{})
	if err := txns.Load(context.Background()); err != nil {
		log.Fatal(err)
	}
	// The server's age key, the default recipient of secrets, is made in
	// the data directory.
	sec, err := secrets.New(secrets.Options{KeyFile: filepath.Join(dir, secrets.KeyFileName)})
	if err != nil {
		log.Fatal(err)
	}
	ts := httptest.NewServer(api.New(api.Options{Store: st, Txns: txns, Secrets: sec}))
	return ts.URL, func() {
		ts.Close()
		txns.Close()
		st.Close()
		os.RemoveAll(dir)
	}
}

func Example() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	c, err := client.New(url)
	if err != nil {
		log.Fatal(err)
	}
	kv := c.Repo("default")
	res, err := kv.Put(ctx, "apps/web/replicas", []byte("3"), &client.PutOptions{Message: "scale web to 3"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("revision", res.Revision, "etag", res.ETag)

	v, err := kv.Get(ctx, "apps/web/replicas", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s = %s (changed at revision %d)\n", v.Key, v.Data, v.ModRevision)

	_, err = kv.Get(ctx, "apps/db/replicas", nil)
	fmt.Println("missing key:", errors.Is(err, gitstate.ErrKeyNotFound))
	// Output:
	// revision 1 etag e440e5c842586965a7fb77deda2eca68612b1f53
	// apps/web/replicas = 3 (changed at revision 1)
	// missing key: true
}

// Read-modify-write with If-Match: a write based on a stale read fails
// with a precondition error instead of losing the other writer's update.
func ExampleRepo_Put_ifMatch() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, _ := client.New(url)
	kv := c.Repo("default")

	kv.Put(ctx, "counter", []byte("1"), &client.PutOptions{Create: true})
	v, _ := kv.Get(ctx, "counter", nil)

	// Someone else writes in between.
	kv.Put(ctx, "counter", []byte("5"), nil)

	_, err := kv.Put(ctx, "counter", []byte("2"), &client.PutOptions{IfMatch: v.ETag})
	fmt.Println(errors.Is(err, gitstate.ErrPreconditionFailed))
	// Output: true
}

// An atomic batch: every op applies in one commit, or none does.
func ExampleRepo_Commit() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, _ := client.New(url)
	kv := c.Repo("default")

	res, err := kv.Commit(ctx, &wire.CommitRequest{
		Message: "deploy web and db together",
		Ops: []wire.Op{
			client.PutOp("apps/web/image", []byte("web:1.4")),
			client.PutOp("apps/db/image", []byte("db:9.2")),
		},
		Preconditions: []wire.Precondition{client.IfAbsent("apps/web/image")},
	})
	if err != nil {
		log.Fatal(err)
	}
	ci, _ := kv.CommitInfo(ctx, wire.RevNumber(res.Revision))
	for _, ch := range ci.Changes {
		fmt.Println(ch.Op, ch.Key)
	}
	// Output:
	// put apps/db/image
	// put apps/web/image
}

// Items lists every key under a prefix, following pages at one revision.
func ExampleRepo_Items() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, _ := client.New(url)
	kv := c.Repo("default")
	for _, k := range []string{"apps/web", "apps/db", "apps/cache", "infra/dns"} {
		kv.Put(ctx, k, []byte("on"), nil)
	}

	for it, err := range kv.Items(ctx, &client.ListOptions{Prefix: "apps/", Limit: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(it.Key, it.ModRevision)
	}
	// Output:
	// apps/cache 3
	// apps/db 2
	// apps/web 1
}

// Rollback sets the state under a prefix back to a past revision in one new
// commit.
func ExampleRepo_Rollback() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, _ := client.New(url)
	kv := c.Repo("default")
	kv.Put(ctx, "apps/web/image", []byte("web:1.4"), nil) // revision 1
	kv.Put(ctx, "apps/web/image", []byte("web:1.5"), nil) // revision 2

	res, err := kv.Rollback(ctx, "1", &client.RollbackOptions{Prefix: "apps/web/"})
	if err != nil {
		log.Fatal(err)
	}
	v, _ := kv.Get(ctx, "apps/web/image", nil)
	fmt.Printf("revision %d: %s\n", res.Revision, v.Data)
	// Output: revision 3: web:1.4
}

// A transaction: writes wait on a branch, read back there and previewed,
// until one merge commit applies them to main.
func ExampleRepo_BeginTxn() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, _ := client.New(url)
	kv := c.Repo("default")
	kv.Put(ctx, "apps/web/replicas", []byte("3\n"), nil) // revision 1

	t, err := kv.BeginTxn(ctx, &client.BeginTxnOptions{Message: "scale web", TTL: time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	tx := kv.Txn(t.ID)
	tx.Put(ctx, "apps/web/replicas", []byte("5\n"), nil)
	tx.Put(ctx, "apps/web/max", []byte("10\n"), nil)

	in, _ := tx.Get(ctx, "apps/web/replicas", nil)
	onMain, _ := kv.Get(ctx, "apps/web/replicas", nil)
	fmt.Printf("in the transaction: %son main: %s", in.Data, onMain.Data)

	d, _ := kv.TxnDiff(ctx, t.ID, nil)
	for _, ch := range d.Changes {
		fmt.Println(ch.Op, ch.Key)
	}
	res, err := kv.CommitTxn(ctx, t.ID)
	if err != nil {
		log.Fatal(err)
	}
	onMain, _ = kv.Get(ctx, "apps/web/replicas", nil)
	fmt.Printf("committed as revision %d: %s", res.Revision, onMain.Data)
	// Output:
	// in the transaction: 5
	// on main: 3
	// added apps/web/max
	// modified apps/web/replicas
	// committed as revision 2: 5
}

// Secrets: written and read as plaintext, kept encrypted in the repo (the
// kv routes see the SOPS document), versioned like every other key.
func ExampleRepo_PutSecret() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, _ := client.New(url)
	kv := c.Repo("default")

	w, err := kv.PutSecret(ctx, "apps/web/db-password", []byte("s3cret\n"), &client.PutOptions{Create: true})
	if err != nil {
		log.Fatal(err)
	}
	s, err := kv.GetSecret(ctx, "apps/web/db-password", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("revision %d: %q\n", w.Revision, s.Data)

	doc, _ := kv.Get(ctx, "apps/web/db-password.sops.json", nil)
	fmt.Println("stored encrypted:", !bytes.Contains(doc.Data, []byte("s3cret")))

	list, _ := kv.ListAllSecrets(ctx, &client.ListSecretsOptions{Prefix: "apps/"}, 0)
	for _, it := range list.Items {
		fmt.Println("listed:", it.Key, "etag matches:", it.ETag == w.ETag)
	}

	_, err = kv.PutSecret(ctx, "apps/web/db-password", []byte("other"), &client.PutOptions{Create: true})
	fmt.Println("create again:", errors.Is(err, gitstate.ErrPreconditionFailed))
	// Output:
	// revision 1: "s3cret\n"
	// stored encrypted: true
	// listed: apps/web/db-password etag matches: true
	// create again: true
}
