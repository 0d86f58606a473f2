package jsonstore

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/keystile/keystile/apikey"
)

// formatVersion is the version of the file this package writes.
//
//   - 1 (written before accounts, with no "version" field): keys, settings
//     and events carry no account. Open reads them into
//     apikey.DefaultAccount, and gives old events the type of their key.
//   - 2: every key, settings and event names its account.
//
// Open reads every version up to formatVersion; the next write saves the
// file as formatVersion. A file of a later version is refused, so that an
// older program never drops what it does not understand.
const formatVersion = 2

// file is the JSON document on disk.
//
// apikey.Record and apikey.Settings keep their hash, recoverable key and
// revision out of JSON (`json:"-"`), so that an API response can never leak
// them by accident. A store must keep them, so the rows below add them back.
type file struct {
	Version  int            `json:"version"`
	Revision int64          `json:"revision"`
	Keys     []keyRow       `json:"keys"`
	Settings []settingsRow  `json:"settings"`
	Events   []apikey.Event `json:"events"` // oldest first
}

type keyRow struct {
	apikey.Record
	Hash        string `json:"hash"`
	Recoverable []byte `json:"recoverable,omitempty"` // base64 in JSON
	Revision    int64  `json:"revision"`
}

type settingsRow struct {
	apikey.Settings
	Revision int64 `json:"revision"`
}

// encode returns st as indented JSON, keys sorted by id and settings by
// account and environment, so that the file diffs well.
func encode(st *state) ([]byte, error) {
	f := file{Version: formatVersion, Revision: st.revision, Keys: []keyRow{}, Settings: []settingsRow{}, Events: st.events}
	for _, id := range slices.Sorted(maps.Keys(st.keys)) {
		r := st.keys[id]
		f.Keys = append(f.Keys, keyRow{Record: r, Hash: r.Hash.Reveal(), Recoverable: r.Recoverable.Bytes(), Revision: r.Revision})
	}
	for _, ref := range st.envs {
		s := st.settings[ref]
		f.Settings = append(f.Settings, settingsRow{Settings: s, Revision: s.Revision})
	}
	if f.Events == nil {
		f.Events = []apikey.Event{}
	}
	return json.MarshalIndent(f, "", "  ")
}

// decode parses a file of any version up to formatVersion, checks it, and
// returns its state with the indexes built.
func decode(b []byte) (*state, error) {
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	if f.Version > formatVersion {
		return nil, fmt.Errorf("file format %d is newer than this program's (%d)", f.Version, formatVersion)
	}
	// Version 1 had no accounts: everything was the default account's.
	orDefault := func(account string) string {
		if account == "" && f.Version < 2 {
			return apikey.DefaultAccount
		}
		return account
	}

	st := newState()
	st.revision = f.Revision
	for _, row := range f.Keys {
		r := row.Record
		r.Account = orDefault(r.Account)
		r.Hash, r.Recoverable, r.Revision = apikey.NewOpaque(row.Hash), apikey.OpaqueBytes(row.Recoverable), row.Revision
		if _, dup := st.keys[r.ID]; dup || r.Revision <= 0 || r.Revision > f.Revision || apikey.ValidateAccount(r.Account) != nil {
			return nil, fmt.Errorf("bad key row %s", r.Prefix())
		}
		st.keys[r.ID] = r
	}
	for _, row := range f.Settings {
		s := row.Settings
		s.Account = orDefault(s.Account)
		s.Revision = row.Revision
		ref := envRef{s.Account, s.Environment}
		if _, dup := st.settings[ref]; dup || s.Revision <= 0 || s.Revision > f.Revision || apikey.ValidateAccount(s.Account) != nil {
			return nil, fmt.Errorf("bad settings row %q", s.Environment)
		}
		st.settings[ref] = s
	}
	counted := map[string]int64{} // events of each account so far
	for _, e := range f.Events {
		e.Account = orDefault(e.Account)
		counted[e.Account]++
		e.Seq = counted[e.Account]            // its place in its account's log
		if e.KeyID != "" && e.KeyType == "" { // version 1 named the key by id only
			e.KeyType = st.keys[e.KeyID].Type
		}
		st.events = append(st.events, e)
	}
	if err := st.index(); err != nil {
		return nil, fmt.Errorf("bad key rows: %w", err)
	}
	return st, nil
}
