package main

import (
	"context"
	"encoding/hex"
	"flag"

	"github.com/keystile/keystile/apikey"
	"github.com/keystile/keystile/examples/internal/exampledb"
)

// importKey is the import command: it stores a key that the service
// issued before it adopted keystile in the account it names, by the
// SHA-256 digest of its key string, as a table of sha256(key) holds it.
// Importing is the service's act (apikey.Manager.Import): it needs
// --account '*'. The key itself is never
// asked for: a command line ends up in shell histories and process lists.
func importKey(fs *flag.FlagSet) action {
	digest := fs.String("digest", "", "the key's SHA-256 digest, 64 `HEX` characters, required")
	scopes := fs.String("scopes", "", "comma-separated `SCOPES` of a server key, required (\"*\" for full access)")
	expires := fs.Duration("expires", 0, "the key's remaining lifetime, a `DURATION` such as 720h (default: no expiry)")
	name := fs.String("name", "", "a `NAME` for people, such as \"legacy key\"")
	ownerID := fs.String("owner", "", "whom the key was issued to: an `ID` of the service's user or customer")
	md := fs.String("metadata", "", "comma-separated `NAME=VALUE` pairs to attach to the key")
	return func(ctx context.Context, c *cli, args []string) (result, error) {
		if holdsKey(*name) || holdsKey(*ownerID) || holdsKey(*md) || holdsKey(*digest) {
			return result{}, usagef("import: %s", notShown)
		}
		var sum [32]byte
		if *digest == "" {
			return result{}, usagef("import: --digest is required: the key's SHA-256 digest in hex (printf %%s \"$KEY\" | sha256sum)")
		}
		if n, err := hex.Decode(sum[:], []byte(*digest)); err != nil || n != len(sum) || len(*digest) != hex.EncodedLen(len(sum)) {
			return result{}, usagef("import: --digest: want the key's SHA-256 digest, 64 hexadecimal characters")
		}
		pairs, err := parsePairs(splitList(*md))
		if err != nil {
			return result{}, err
		}
		m, err := c.open(ctx, exampledb.Migrate)
		if err != nil {
			return result{}, err
		}
		req := apikey.ImportRequest{Account: args[0], Environment: args[1], Type: apikey.KeyType(args[2]), Digest: sum, Name: *name,
			Owner: *ownerID, Metadata: pairs, Scopes: splitList(*scopes)}
		if *expires != 0 {
			req.ExpiresAt = m.Now().Add(*expires)
		}
		view, err := m.Import(ctx, c.actor(), req)
		if err != nil {
			return result{}, err
		}
		return viewLine(view, view.Environment, string(view.Type), view.Prefix, "imported"), nil
	}
}
