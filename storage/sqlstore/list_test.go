package sqlstore

import (
	"database/sql"
	"encoding/json"
	"testing"
)

// FuzzDecodeList checks that decodeList reads every list as json.Unmarshal
// does, through its fast path or not.
func FuzzDecodeList(f *testing.F) {
	for _, seed := range []string{
		`[]`, `["*"]`, `["https://app.example.com","https://*.example.org"]`, `["orders:read","a b"]`,
		`[""]`, `["a",""]`, `[ "a"]`, `["a" ,"b"]`, `["\u003c"]`, `["é"]`, `["a\"b"]`, `["a",]`, `[,"a"]`,
		`["a""b"]`, `["a"`, `"a"]`, `null`, `[1]`, `["a",1]`, `[["a"]]`, `["\t"]`, `["` + "\x7f" + `"]`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := decodeList(sql.NullString{String: s, Valid: true})
		var want []string
		wantErr := json.Unmarshal([]byte(s), &want)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("decodeList(%q): error %v, json.Unmarshal: %v", s, err, wantErr)
		}
		if err != nil {
			return
		}
		if (got == nil) != (want == nil) || len(got) != len(want) {
			t.Fatalf("decodeList(%q) = %#v, json.Unmarshal: %#v", s, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("decodeList(%q) = %#v, json.Unmarshal: %#v", s, got, want)
			}
		}
		if _, ok := decodePlainList(s); ok && wantErr != nil {
			t.Fatalf("the fast path accepted %q, which is not JSON", s)
		}
	})
}

// TestDecodePlainList checks that the lists the store writes take the fast
// path.
func TestDecodePlainList(t *testing.T) {
	for _, list := range [][]string{{}, {"*"}, {"https://app.example.com", "https://*.example.org"}, {"orders:read", ""}} {
		encoded, err := encodeList(list)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodePlainList(encoded.(string))
		if !ok || len(got) != len(list) {
			t.Fatalf("decodePlainList(%q) = %q, %v", encoded, got, ok)
		}
	}
}
