package wire

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDurationUnmarshal(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string // a part of the error; "" for none
	}{
		{`"24h"`, 24 * time.Hour, ""},
		{`"1m30s"`, 90 * time.Second, ""},
		{`90`, 90 * time.Second, ""},
		{`0.5`, 500 * time.Millisecond, ""},
		{`-1`, -time.Second, ""},
		{`"1 day"`, 0, `such as "24h"`},
		{`true`, 0, `such as "24h"`},
		{`1e10`, 0, "out of range"},
		{`-1e10`, 0, "out of range"},
		{`1e400`, 0, "out of range"},
		{`9223372036.854775807`, 0, "out of range"}, // 2^63 ns, after rounding
		{`9223372036.854776`, 0, "out of range"},
		{`-9223372036.854775808`, 0, "out of range"},
		{`9223372036`, 9223372036 * time.Second, ""},
	}
	for _, tt := range tests {
		var d Duration
		err := json.Unmarshal([]byte(tt.in), &d)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.in, err)
		case tt.wantErr == "" && time.Duration(d) != tt.want:
			t.Errorf("%s: %v, want %v", tt.in, time.Duration(d), tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: error %v, want one saying %q", tt.in, err, tt.wantErr)
		case tt.wantErr != "" && strings.Contains(err.Error(), "strconv"):
			t.Errorf("%s: %v speaks Go, not JSON", tt.in, err)
		}
	}
}
