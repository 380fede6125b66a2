package storage

// NoteSink receives notes: small records that a write carries
// (Batch.Note) and that are made durable in the same journal record, by the
// same fdatasync, as the commit they describe. gitstate's audit log is one:
// an acknowledged write's audit line then costs no sync of its own.
//
// The journal holds a note until the flusher checkpoints the record that
// carries it, and the flusher calls Sync first; a crash before that replays
// the record at the next open and hands its notes to Recover. So a note is
// lost only if the sink loses what Sync made durable.
type NoteSink interface {
	// Append takes the notes of one group, in commit order, once the group
	// is durable, before its writers are answered. It need not sync them.
	// It runs on the committer's path and must be quick. Notes it fails to
	// take must be kept and taken again by the next Sync.
	Append(notes [][]byte) error
	// Sync makes every note appended so far durable.
	Sync() error
	// Recover takes the notes of the journal records replayed at open. Any
	// of them may have been appended before the crash (and then must not be
	// appended twice); it appends the others and syncs.
	Recover(notes [][]byte) error
}
