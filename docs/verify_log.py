#!/usr/bin/env python3
"""Verifies a UFRECS transparency log from its public API, with nothing of UFRECS's code.

    python3 verify_log.py URL VKEY [--witness WITNESS_VKEY ...]

1. Fetches the latest checkpoint (a C2SP signed note) and checks the log's Ed25519
   signature against VKEY (what `ufrecs log vkey` prints), and the cosignature of each
   --witness key (C2SP cosignature/v1).
2. Downloads every entry (C2SP tlog-tiles entry bundles), rebuilds the RFC 6962 tree and
   checks it gives the signed root.
3. Replays the entries (the contract's sections 6, 6b and 6e: trust tiers,
   cross-checking, flags) and recomputes every office's totals, results and flags, then
   compares them with what the API publishes, naming the first office that differs.

Exit status 0 when everything matches, 1 otherwise. Needs Python 3.9+ and the
`cryptography` package (pip install cryptography) for Ed25519.
"""

import base64
import datetime
import hashlib
import json
import struct
import sys
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

TRUSTED = {"independent", "official", "political_party"}


def fail(msg):
    print("FAILED: " + msg)
    sys.exit(1)


def get(base, path):
    with urllib.request.urlopen(base.rstrip("/") + path, timeout=60) as r:
        return r.read()


# --- signed notes (C2SP signed-note, tlog-checkpoint, tlog-cosignature) ---------------

def parse_vkey(vkey, alg):
    name, key_id, key = vkey.strip().split("+", 2)
    raw = base64.b64decode(key)
    if raw[0] != alg or len(raw) != 33:
        fail("%s is not a verifier key of type %d" % (vkey, alg))
    if hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex() != key_id:
        fail("%s: its key id does not match its key" % vkey)
    return name, bytes.fromhex(key_id), Ed25519PublicKey.from_public_bytes(raw[1:])


def signatures(note):
    body, _, sigs = note.rpartition("\n\n")
    out = []
    for line in sigs.rstrip("\n").split("\n"):
        if not line.startswith("\u2014 "):
            fail("malformed signature line %r" % line)
        name, blob = line[2:].split(" ", 1)
        out.append((name, base64.b64decode(blob)))
    return body + "\n", out


def verify_checkpoint(note, vkey, witnesses):
    body, sigs = signatures(note)
    name, key_id, key = parse_vkey(vkey, 0x01)
    good = False
    for sig_name, blob in sigs:
        if sig_name == name and blob[:4] == key_id:
            try:
                key.verify(blob[4:], body.encode())
                good = True
            except InvalidSignature:
                fail("the log's signature does not verify")
    if not good:
        fail("the checkpoint is not signed by " + name)
    origin, size, root = body.rstrip("\n").split("\n")
    if origin != name:
        fail("the checkpoint's origin %r is not the key's name %r" % (origin, name))
    cosigners = []
    for w in witnesses:
        w_name, w_id, w_key = parse_vkey(w, 0x04)
        found = [b for n, b in sigs if n == w_name and b[:4] == w_id]
        if not found:
            fail("no cosignature of " + w_name)
        (timestamp,) = struct.unpack(">Q", found[0][4:12])
        message = ("cosignature/v1\ntime %d\n" % timestamp + body).encode()
        try:
            w_key.verify(found[0][12:], message)
        except InvalidSignature:
            fail("the cosignature of %s does not verify" % w_name)
        cosigners.append(w_name)
    return int(size), base64.b64decode(root), cosigners


# --- the RFC 6962 tree, from the entry bundles (C2SP tlog-tiles) ------------------------

def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def root_of(hashes):
    """RFC 6962 Merkle tree hash of a list of leaf hashes."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    level = list(hashes)
    # Fold complete subtrees from the left: equivalent to the recursive definition.
    stack = []
    for i, h in enumerate(level):
        stack.append((h, 1))
        while len(stack) > 1 and stack[-1][1] == stack[-2][1]:
            right, n = stack.pop()
            left, _ = stack.pop()
            stack.append((hashlib.sha256(b"\x01" + left + right).digest(), 2 * n))
    h, _ = stack.pop()
    while stack:
        left, _ = stack.pop()
        h = hashlib.sha256(b"\x01" + left + h).digest()
    return h


def tile_index(n):
    parts = ["%03d" % (n % 1000)]
    n //= 1000
    while n > 0:
        parts.append("x%03d" % (n % 1000))
        n //= 1000
    return "/".join(reversed(parts))


def entries(base, size):
    out = []
    for n in range((size + 255) // 256):
        width = min(256, size - 256 * n)
        path = "/log/tile/entries/" + tile_index(n) + ("" if width == 256 else ".p/%d" % width)
        data = get(base, path)
        while data:
            (length,) = struct.unpack(">H", data[:2])
            out.append(data[2:2 + length])
            data = data[2 + length:]
    if len(out) != size:
        fail("the bundles hold %d entries, not %d" % (len(out), size))
    return out


# --- the replay: sections 6, 6b and 6e ------------------------------------------------

def winner(weights):
    """The value with the highest weight, or None on a tie for the highest."""
    best = max(weights.values())
    top = [v for v, w in weights.items() if w == best]
    return top[0] if len(top) == 1 else None


def seconds(at):
    return int(datetime.datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ")
               .replace(tzinfo=datetime.timezone.utc).timestamp())


class Office:
    def __init__(self):
        self.votes = {}        # index -> {source: attrs}
        self.vote_meta = {}    # index -> {"first_at", "timed", "observed": {source: at}}
        self.verified = {}     # index -> attrs
        self.ballots = {}      # index -> {source: party}
        self.joined = {"vote": set(), "ballot": set()}
        self.last_report = {}  # source -> second of its last vote report here


def replay(raw_entries):
    status, offices, registered = {}, {}, {}
    for raw in raw_entries:
        e = json.loads(raw)
        kind, actor, d = e["kind"], e["actor"], e["detail"]
        office = offices.setdefault(e["poll_office_id"], Office()) if e["poll_office_id"] else None
        if kind == "source_created":
            status[d.get("source", actor)] = d["status"]
        elif kind == "source_updated" and "status" in d:
            status[d["source"]] = d["status"]["new"]
        elif kind == "directory_rows":
            for row in d["rows"]:
                registered[row["identifier"]] = row["voters_count"]
        elif kind in ("vote_proposed", "vote_corrected"):
            idx, at = d["index"], seconds(e["at"])
            office.joined["vote"].add(actor)
            office.votes.setdefault(idx, {})[actor] = (d["new"]["gender"], d["new"]["age"], d["new"]["has_torn"])
            if idx not in office.vote_meta:
                previous = office.last_report.get(actor)
                timed = not d.get("batch") and (previous is None or at - previous >= 2)
                office.vote_meta[idx] = {"first_at": e["at"], "timed": timed, "observed": {}}
            if kind == "vote_proposed" and "observed_at" in d:
                office.vote_meta[idx]["observed"][actor] = d["observed_at"]
            office.last_report[actor] = at
        elif kind == "vote_verified":
            office.verified[d["index"]] = (d["gender"], d["age"], d["has_torn"])
        elif kind in ("ballot_proposed", "ballot_corrected"):
            office.joined["ballot"].add(actor)
            office.ballots.setdefault(d["index"], {})[actor] = d["new"]["party_id"]
    return status, offices, registered


def stats_of(o, status, voters):
    trusted_here = any(status.get(s) in TRUSTED for s in o.joined["vote"])
    counts = lambda s: status.get(s) in TRUSTED or not trusted_here
    t = dict(votes=0, male=0, female=0, less_30=0, less_60=0, more_60=0, has_torn=0, verified=0, disputed=0)
    sources, last, max_index, observed = set(), None, None, []
    for idx in sorted(o.votes):
        counted = {s: a for s, a in o.votes[idx].items() if counts(s)}
        if not counted:
            continue
        sources.update(counted)
        v = o.verified.get(idx)
        accepted = []
        for k in range(3):
            w = {}
            for a in counted.values():
                w[a[k]] = w.get(a[k], 0) + 2
            if v is not None:
                w[v[k]] = w.get(v[k], 0) + 1
            accepted.append(winner(w))
        gender = accepted[0] or "undecided"
        age = accepted[1] or "undecided"
        torn = accepted[2] or False
        unanimous = len(set(counted.values())) == 1
        differs = v is not None and (v[0] != accepted[0] or v[1] != accepted[1] or v[2] != torn)
        t["votes"] += 1
        if gender in ("male", "female"):
            t[gender] += 1
        if age in ("less_30", "less_60", "more_60"):
            t[age] += 1
        t["has_torn"] += torn
        t["verified"] += v is not None
        t["disputed"] += (not unanimous) or differs
        meta = o.vote_meta[idx]
        last = {"index": idx, "gender": gender, "age": age, "has_torn": torn, "timestamp": meta["first_at"]}
        max_index = idx
        times = [at for s, at in meta["observed"].items() if s in counted]
        if times:
            observed.append(min(seconds(at) for at in times))
        elif meta["timed"]:
            observed.append(seconds(meta["first_at"]))
    t["sources"] = len(sources)
    return t, last, max_index, sorted(observed)


def results_of(o, status):
    trusted_here = any(status.get(s) in TRUSTED for s in o.joined["ballot"])
    counts = lambda s: status.get(s) in TRUSTED or not trusted_here
    parties, total, undecided, sources, last = {}, 0, 0, set(), None
    for idx in sorted(o.ballots):
        counted = {s: p for s, p in o.ballots[idx].items() if counts(s)}
        if not counted:
            continue
        sources.update(counted)
        total += 1
        w = {}
        for p in counted.values():
            w[p] = w.get(p, 0) + 1
        p = winner(w)
        if p is None:
            undecided += 1
        else:
            parties[p] = parties.get(p, 0) + 1
            last = {"index": idx, "party_id": p}
    results = [{"party_id": p, "ballots": n, "share": n / total}
               for p, n in sorted(parties.items(), key=lambda x: (-x[1], x[0]))]
    return {"last_paper": last, "results": results, "total_ballots": total,
            "undecided_ballots": undecided, "sources": len(sources)}


def flags_of(t, max_index, ballots, registered, observed):
    out = []
    votes = t["votes"]
    if registered is not None and votes > registered:
        out.append(("votes_exceed_registered", "%d votes recorded for %d registered voters" % (votes, registered)))
    if votes > 0 and ballots > votes:
        out.append(("ballots_exceed_votes", "%d ballots counted for %d votes recorded" % (ballots, votes)))
    if registered is not None and ballots > registered:
        out.append(("ballots_exceed_registered", "%d ballots counted for %d registered voters" % (ballots, registered)))
    if any(observed[i + 10] - observed[i] < 60 for i in range(len(observed) - 10)):
        out.append(("fast_voting", "more than 10 votes observed within 60 seconds"))
    if votes >= 20 and t["disputed"] * 5 > votes:
        out.append(("high_dispute_rate", "%d of %d votes disputed" % (t["disputed"], votes)))
    if max_index is not None and max_index * 10 > votes * 11:
        out.append(("index_gaps", "highest index %d for %d votes recorded" % (max_index, votes)))
    return [{"code": c, "message": m} for c, m in out]


def main(argv):
    if len(argv) < 3:
        print(__doc__)
        return 2
    base, vkey = argv[1], argv[2]
    witnesses = [argv[i + 1] for i, a in enumerate(argv) if a == "--witness"]
    note = get(base, "/log/checkpoint").decode()
    size, root, cosigners = verify_checkpoint(note, vkey, witnesses)
    print("checkpoint of %d entries signed by the log%s" % (
        size, (", cosigned by " + ", ".join(cosigners)) if cosigners else ""))
    raw = entries(base, size)
    if root_of([leaf_hash(e) for e in raw]) != root:
        fail("the entries do not give the signed root")
    print("the %d entries give the signed root" % size)
    status, offices, registered = replay(raw)
    checked, later = 0, []
    for office_id in sorted(offices):
        o = offices[office_id]
        stats = json.loads(get(base, "/api/pollofficesstats/%s/" % office_id))
        results = json.loads(get(base, "/api/pollofficeresults/%s/" % office_id))
        if max(stats["log_seq"], results["log_seq"]) > size:
            later.append(office_id)  # changed after this checkpoint: verify it next time
            continue
        t, last, max_index, observed = stats_of(o, status, registered)
        r = results_of(o, status)
        mine = {"totals": t, "last_vote": last,
                "flags": flags_of(t, max_index, r["total_ballots"], registered.get(office_id), observed)}
        for key, value in mine.items():
            if stats[key] != value:
                fail("office %s: stats %s are %s, the log gives %s" % (office_id, key, json.dumps(stats[key]), json.dumps(value)))
        for key, value in r.items():
            if results[key] != value:
                fail("office %s: results %s are %s, the log gives %s" % (office_id, key, json.dumps(results[key]), json.dumps(value)))
        checked += 1
    print("recomputed %d offices from the log: every figure matches" % checked)
    if later:
        print("%d offices changed after this checkpoint: run again to verify them" % len(later))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
