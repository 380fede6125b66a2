package api

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Git's pkt-line framing (gitprotocol-common(5)): a line is its length, in
// four hex digits counting themselves, then its bytes; "0000" is a flush.

// maxPktData is the most data one pkt-line carries.
const maxPktData = 65516

// errFlush is what readPkt returns for a flush packet.
var errFlush = errors.New("flush-pkt")

func appendPkt(b []byte, data string) []byte {
	b = fmt.Appendf(b, "%04x", len(data)+4)
	return append(b, data...)
}

func appendFlush(b []byte) []byte { return append(b, "0000"...) }

// readPkt reads one pkt-line and returns its data, or errFlush.
func readPkt(br *bufio.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, err
	}
	n, err := strconv.ParseUint(string(hdr[:]), 16, 16)
	if err != nil {
		return nil, fmt.Errorf("bad pkt-line length %q", hdr[:])
	}
	switch {
	case n == 0:
		return nil, errFlush
	case n < 4:
		return nil, fmt.Errorf("bad pkt-line length %d", n)
	}
	data := make([]byte, n-4)
	if _, err := io.ReadFull(br, data); err != nil {
		return nil, err
	}
	return data, nil
}

// sideband frames what goes to a client that asked for side-band-64k:
// band 1 carries the protocol's own data, band 2 messages the client shows
// ("remote: ..."), band 3 a fatal error.
type sideband struct {
	on  bool
	buf []byte
}

func (s *sideband) band(n byte, data []byte) {
	for len(data) > 0 {
		chunk := data[:min(len(data), maxPktData-1)]
		data = data[len(chunk):]
		s.buf = fmt.Appendf(s.buf, "%04x", len(chunk)+5)
		s.buf = append(s.buf, n)
		s.buf = append(s.buf, chunk...)
	}
}

// message sends a line for the client to show (dropped without a side
// band: the protocol has nowhere else to put it).
func (s *sideband) message(line string) {
	if s.on {
		s.band(2, []byte(line+"\n"))
	}
}

// data sends protocol data, in band 1 when there is a side band.
func (s *sideband) data(b []byte) {
	if s.on {
		s.band(1, b)
		return
	}
	s.buf = append(s.buf, b...)
}

// finish returns everything to send.
func (s *sideband) finish() []byte {
	if s.on {
		s.buf = appendFlush(s.buf)
	}
	return s.buf
}
