package keycache

import "github.com/keystile/keystile/apikey"

// importedHead starts the head of an imported key's Key: as long as
// "server-", and never the start of a keystile key.
const importedHead = "import-"

// ImportedKeyOf returns the Key of an imported key string (see
// apikey.ImportFormat) whose SHA-256 digest is digest and key id
// apikey.ImportedID(digest). id must be apikey.IDLength bytes long (it
// panics otherwise). It allocates nothing.
func ImportedKeyOf(id string, digest [32]byte) Key {
	if len(id) != apikey.IDLength {
		panic("keycache: imported key id of the wrong length")
	}
	var k Key
	copy(k.sum[:], digest[:])
	n := copy(k.head[:], importedHead)
	n += copy(k.head[n:], id)
	k.head[n] = '_'
	return k
}
