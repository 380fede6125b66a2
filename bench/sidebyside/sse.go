package sidebyside

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
)

var (
	sseID       = []byte("id: ")
	sseRevision = []byte("event: revision\n")
)

// readSSE reads a gitstate watch stream and calls got with the revision
// of every "revision" event, until r fails or ends. It keeps no line: only
// the id of the event being read, so that a thousand readers in one
// process cost little more than the bytes they read.
func readSSE(r io.Reader, got func(rev int64)) error {
	br := bufio.NewReaderSize(r, 16<<10)
	id := int64(-1)
	for {
		line, err := br.ReadSlice('\n')
		for err == bufio.ErrBufferFull { // a long data line: skip it
			_, err = br.ReadSlice('\n')
			line = nil
		}
		if err != nil {
			return err
		}
		switch {
		case len(line) == 1: // the blank line that ends an event
			id = -1
		case bytes.HasPrefix(line, sseID):
			if n, err := strconv.ParseInt(string(bytes.TrimSpace(line[len(sseID):])), 10, 64); err == nil {
				id = n
			}
		case bytes.Equal(line, sseRevision):
			if id >= 0 {
				got(id)
			}
		}
	}
}
