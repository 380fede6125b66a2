// Package sidebyside measures gitstate against the stores its users would
// otherwise pick, on the same machine and in the same run: etcd (embedded,
// in its own process) and plain Git driven by its CLI, one commit per
// change. It runs the workloads of issue 8 — GET at head, PUT with 1 and
// with many writers, a list of 1,000 keys, watch fan-out, a 10-key
// transaction on a big and a small repository, cold start, peak RSS — in
// rounds that rotate which system goes first, and writes a Markdown report
// of medians and gitstate/peer ratios.
//
// The systems are the System interface's implementations; what only some
// of them can do (watch, start as a server, report CPU and memory) is in
// smaller interfaces found by type assertion. The command is
// bench/cmd/sidebyside. The package links etcd; the product does not.
//
// A process that runs Run must start with
//
//	if sidebyside.IsEtcdServer() {
//		os.Exit(sidebyside.EtcdServerMain())
//	}
//
// because the etcd server is that same binary, re-executed.
package sidebyside
