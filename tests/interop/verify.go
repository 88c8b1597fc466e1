// Verifies a live UFRECS transparency log with Go's own implementation of the formats
// (golang.org/x/mod/sumdb/note and sumdb/tlog, which nobody on the project wrote):
// the signed checkpoint, every hash tile it needs, the entry bundles, an inclusion
// proof and a consistency proof from the JSON API.
//
//	go run verify.go BASE_URL VKEY SEQ OLD_CHECKPOINT_FILE
//
// Exits 0 and prints "verified" when everything holds; anything else exits 1.
package main

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func get(url string) []byte {
	res, err := http.Get(url)
	if err != nil {
		fail("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		fail("GET %s: status %d %v", url, res.StatusCode, err)
	}
	return body
}

// open checks a signed checkpoint note with the log's key and parses its body (C2SP
// tlog-checkpoint: origin, size, base64 root hash).
func open(msg []byte, verifier note.Verifier) tlog.Tree {
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail("the checkpoint does not verify: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) != 3 || lines[0] != verifier.Name() {
		fail("not a checkpoint of %s: %q", verifier.Name(), n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("bad size %q", lines[1])
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		fail("bad root hash %q", lines[2])
	}
	var h tlog.Hash
	copy(h[:], raw)
	return tlog.Tree{N: size, Hash: h}
}

// tiles reads C2SP tiles: x/mod names them tile/8/L/N, the C2SP layout tile/L/N.
type tiles struct{ base string }

func (t tiles) Height() int { return 8 }

func (t tiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(ts))
	for i, tile := range ts {
		path := strings.Replace(tile.Path(), "tile/8/", "tile/", 1)
		out[i] = get(t.base + "/log/" + path)
	}
	return out, nil
}

func (t tiles) SaveTiles([]tlog.Tile, [][]byte) {}

func hashes(list []string) []tlog.Hash {
	out := make([]tlog.Hash, len(list))
	for i, s := range list {
		raw, err := hex.DecodeString(s)
		if err != nil || len(raw) != tlog.HashSize {
			fail("bad hash %q", s)
		}
		copy(out[i][:], raw)
	}
	return out
}

func main() {
	if len(os.Args) != 5 {
		fail("usage: verify BASE_URL VKEY SEQ OLD_CHECKPOINT_FILE")
	}
	base, vkey := os.Args[1], os.Args[2]
	seq, err := strconv.ParseInt(os.Args[3], 10, 64)
	if err != nil {
		fail("bad seq")
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		fail("bad verifier key: %v", err)
	}
	tree := open(get(base+"/log/checkpoint"), verifier)
	oldMsg, err := os.ReadFile(os.Args[4])
	if err != nil {
		fail("%v", err)
	}
	old := open(oldMsg, verifier)

	// The tree from its tiles: TileHashReader checks every tile against the signed root.
	reader := tlog.TileHashReader(tree, tiles{base})
	root, err := tlog.TreeHash(tree.N, reader)
	if err != nil || root != tree.Hash {
		fail("the tiles do not give the signed root: %v", err)
	}

	// Every entry of the bundles hashes to its leaf in the tiles.
	for start := int64(0); start < tree.N; start += 256 {
		width := tree.N - start
		name := tlog.Tile{H: 8, L: 0, N: start / 256, W: 256}
		path := strings.Replace(name.Path(), "tile/8/0/", "tile/entries/", 1)
		if width < 256 {
			path += ".p/" + strconv.FormatInt(width, 10)
		} else {
			width = 256
		}
		bundle := get(base + "/log/" + path)
		indexes := make([]int64, width)
		for i := range indexes {
			indexes[i] = tlog.StoredHashIndex(0, start+int64(i))
		}
		leaves, err := reader.ReadHashes(indexes)
		if err != nil {
			fail("leaves: %v", err)
		}
		for i := int64(0); i < width; i++ {
			if len(bundle) < 2 {
				fail("bundle %s is truncated", path)
			}
			n := int(binary.BigEndian.Uint16(bundle))
			if len(bundle) < 2+n {
				fail("bundle %s is truncated", path)
			}
			if tlog.RecordHash(bundle[2:2+n]) != leaves[i] {
				fail("entry %d does not hash to its leaf", start+i+1)
			}
			bundle = bundle[2+n:]
		}
		if len(bundle) != 0 {
			fail("bundle %s has bytes past its entries", path)
		}
	}

	// The JSON inclusion proof of entry SEQ.
	var inclusion struct {
		LeafIndex int64    `json:"leaf_index"`
		TreeSize  int64    `json:"tree_size"`
		LeafHash  string   `json:"leaf_hash"`
		Hashes    []string `json:"hashes"`
	}
	if err := json.Unmarshal(get(fmt.Sprintf("%s/api/log/inclusion/?seq=%d&size=%d", base, seq, tree.N)), &inclusion); err != nil {
		fail("inclusion: %v", err)
	}
	leaf := hashes([]string{inclusion.LeafHash})[0]
	if err := tlog.CheckRecord(hashes(inclusion.Hashes), tree.N, tree.Hash, seq-1, leaf); err != nil {
		fail("the inclusion proof of %d does not verify: %v", seq, err)
	}

	// The JSON consistency proof from the old checkpoint.
	var consistency struct {
		Hashes []string `json:"hashes"`
	}
	if err := json.Unmarshal(get(fmt.Sprintf("%s/api/log/consistency/?from=%d&to=%d", base, old.N, tree.N)), &consistency); err != nil {
		fail("consistency: %v", err)
	}
	if err := tlog.CheckTree(hashes(consistency.Hashes), tree.N, tree.Hash, old.N, old.Hash); err != nil {
		fail("the consistency proof %d -> %d does not verify: %v", old.N, tree.N, err)
	}
	fmt.Printf("verified %d entries, entry %d, consistent with %d\n", tree.N, seq, old.N)
}
