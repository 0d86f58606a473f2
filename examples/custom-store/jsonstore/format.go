package jsonstore

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/keystile/keystile/apikey"
)

// file is the JSON document on disk.
//
// apikey.Record and apikey.Settings keep their hash, recoverable key and
// revision out of JSON (`json:"-"`), so that an API response can never leak
// them by accident. A store must keep them, so the rows below add them back.
type file struct {
	Revision int64          `json:"revision"`
	Keys     []keyRow       `json:"keys"`
	Settings []settingsRow  `json:"settings"`
	Events   []apikey.Event `json:"events"`
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
// environment, so that the file diffs well.
func encode(st state) ([]byte, error) {
	f := file{Revision: st.revision, Keys: []keyRow{}, Settings: []settingsRow{}, Events: st.events}
	for _, id := range slices.Sorted(maps.Keys(st.keys)) {
		r := st.keys[id]
		f.Keys = append(f.Keys, keyRow{Record: r, Hash: r.Hash.Reveal(), Recoverable: r.Recoverable.Bytes(), Revision: r.Revision})
	}
	for _, env := range slices.Sorted(maps.Keys(st.settings)) {
		s := st.settings[env]
		f.Settings = append(f.Settings, settingsRow{Settings: s, Revision: s.Revision})
	}
	if f.Events == nil {
		f.Events = []apikey.Event{}
	}
	return json.MarshalIndent(f, "", "  ")
}

// decode parses what encode wrote.
func decode(b []byte) (state, error) {
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return state{}, err
	}
	st := state{revision: f.Revision, keys: map[string]apikey.Record{}, settings: map[string]apikey.Settings{}, events: f.Events}
	for _, row := range f.Keys {
		r := row.Record
		r.Hash, r.Recoverable, r.Revision = apikey.NewOpaque(row.Hash), apikey.OpaqueBytes(row.Recoverable), row.Revision
		if _, dup := st.keys[r.ID]; dup || r.Revision <= 0 || r.Revision > f.Revision {
			return state{}, fmt.Errorf("bad key row %s", r.Prefix())
		}
		st.keys[r.ID] = r
	}
	for _, row := range f.Settings {
		s := row.Settings
		s.Revision = row.Revision
		if _, dup := st.settings[s.Environment]; dup || s.Revision <= 0 || s.Revision > f.Revision {
			return state{}, fmt.Errorf("bad settings row %q", s.Environment)
		}
		st.settings[s.Environment] = s
	}
	return st, nil
}
