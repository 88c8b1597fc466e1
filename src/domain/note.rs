//! Signed checkpoints and cosignatures (section 6e): C2SP `signed-note` with a plain
//! Ed25519 key (type 0x01, what Go's `golang.org/x/mod/sumdb/note` reads) for the log,
//! C2SP `tlog-checkpoint` bodies, and C2SP `tlog-cosignature` (`cosignature/v1`, key type
//! 0x04) for witnesses. Notes and log keys are `signed_note` (Cloudflare's port of Go's
//! `note`); the cosignature's timestamped message is written here, on the same
//! `signed_note` traits, since that crate predates it.

use base64::prelude::{Engine, BASE64_STANDARD};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use signed_note::{Note, Signer, StandardSigner, StandardVerifier, Verifier, VerifierList};

use super::tlog::{Hash, HASH_SIZE};

const ALG_COSIGNATURE_V1: u8 = 0x04;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NoteError {
    #[error("malformed key")]
    Key,
    #[error("malformed note")]
    Malformed,
    #[error("no valid signature of {0}")]
    Unsigned(String),
    #[error("a signature does not verify")]
    BadSignature,
}

/// A checkpoint's body: origin, size and root hash, one line each.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, BASE64_STANDARD.encode(self.root.0))
    }

    /// Parses a checkpoint body (extension lines are refused: this log writes none).
    pub fn parse(body: &str) -> Result<Checkpoint, NoteError> {
        let lines: Vec<&str> = body.strip_suffix('\n').ok_or(NoteError::Malformed)?.split('\n').collect();
        let [origin, size, root] = lines[..] else { return Err(NoteError::Malformed) };
        let size_ok =
            !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit()) && (size == "0" || !size.starts_with('0'));
        let root = BASE64_STANDARD.decode(root).map_err(|_| NoteError::Malformed)?;
        if origin.is_empty() || !size_ok || root.len() != HASH_SIZE {
            return Err(NoteError::Malformed);
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size: size.parse().map_err(|_| NoteError::Malformed)?,
            root: Hash(root.try_into().map_err(|_| NoteError::Malformed)?),
        })
    }
}

/// The log's signing key, in Go's `note` signer-key text form
/// (`PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>`).
pub struct LogKey {
    signer: StandardSigner,
    vkey: String,
}

impl LogKey {
    /// A new key named `origin`: the key and its text form, to be stored (mode 0600).
    pub fn generate(origin: &str) -> Result<(LogKey, String), NoteError> {
        let (skey, _) = signed_note::generate_key(&mut rand::rngs::OsRng, origin);
        Ok((LogKey::parse(&skey)?, skey))
    }

    pub fn parse(skey: &str) -> Result<LogKey, NoteError> {
        let skey = skey.trim();
        let signer = StandardSigner::new(skey).map_err(|_| NoteError::Key)?;
        let seed =
            BASE64_STANDARD.decode(skey.splitn(5, '+').nth(4).ok_or(NoteError::Key)?).map_err(|_| NoteError::Key)?;
        let key = SigningKey::try_from(&seed[1..]).map_err(|_| NoteError::Key)?;
        let vkey = signed_note::new_ed25519_verifier_key(signer.name(), &key.verifying_key());
        Ok(LogKey { signer, vkey })
    }

    pub fn name(&self) -> &str {
        self.signer.name()
    }

    /// The verifier key, `<name>+<key id hex>+<base64(0x01 || public key)>`.
    pub fn vkey(&self) -> &str {
        &self.vkey
    }

    /// The checkpoint as a signed note.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let mut note = Note::new(checkpoint.body().as_bytes(), &[]).expect("a checkpoint body is a note text");
        note.add_sigs(&[&self.signer]).expect("an Ed25519 key signs");
        String::from_utf8(note.to_bytes()).expect("notes are UTF-8")
    }
}

/// Checks a signed note against the log's verifier key: its checkpoint, and the note's
/// other signature lines (cosignatures, unverified here).
pub fn open_checkpoint(note: &str, vkey: &str) -> Result<Checkpoint, NoteError> {
    let verifier = StandardVerifier::new(vkey).map_err(|_| NoteError::Key)?;
    let name = verifier.name().to_owned();
    let parsed = Note::from_bytes(note.as_bytes()).map_err(|_| NoteError::Malformed)?;
    match parsed.verify(&VerifierList::new(vec![Box::new(verifier)])) {
        Ok(_) => {}
        Err(signed_note::NoteError::UnverifiedNote) => return Err(NoteError::Unsigned(name)),
        Err(signed_note::NoteError::InvalidSignature { .. }) => return Err(NoteError::BadSignature),
        Err(_) => return Err(NoteError::Malformed),
    }
    let body = std::str::from_utf8(parsed.text()).map_err(|_| NoteError::Malformed)?;
    let checkpoint = Checkpoint::parse(body)?;
    if checkpoint.origin != name {
        return Err(NoteError::Malformed);
    }
    Ok(checkpoint)
}

/// The body of a signed note (its text before the blank line).
pub fn note_body(note: &str) -> Result<&str, NoteError> {
    note.find("\n\n").map(|i| &note[..=i]).ok_or(NoteError::Malformed)
}

/// The signature lines of a note, as written (`— <name> <base64>`, no newline).
pub fn signature_lines(note: &str) -> Result<Vec<&str>, NoteError> {
    let body = note_body(note)?;
    let sigs = note[body.len() + 1..].strip_suffix('\n').ok_or(NoteError::Malformed)?;
    Ok(sigs.split('\n').collect())
}

/// A witness's key (`cosignature/v1`, Ed25519): Go's signer-key text form with the key
/// type 0x04, `PRIVATE+KEY+<name>+<key id hex>+<base64(0x04 || seed)>`.
pub struct WitnessKey {
    name: String,
    key: SigningKey,
}

impl WitnessKey {
    pub fn generate(name: &str) -> Result<(WitnessKey, String), NoteError> {
        if !signed_note::is_key_name_valid(name) {
            return Err(NoteError::Key);
        }
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let w = WitnessKey { name: name.to_owned(), key };
        let mut seed = vec![ALG_COSIGNATURE_V1];
        seed.extend_from_slice(&w.key.to_bytes());
        let text = format!("PRIVATE+KEY+{}+{:08x}+{}", w.name, w.key_id(), BASE64_STANDARD.encode(seed));
        Ok((w, text))
    }

    pub fn parse(text: &str) -> Result<WitnessKey, NoteError> {
        let parts: Vec<&str> = text.trim().splitn(5, '+').collect();
        let ["PRIVATE", "KEY", name, id, key] = parts[..] else { return Err(NoteError::Key) };
        let key = BASE64_STANDARD.decode(key).map_err(|_| NoteError::Key)?;
        if !signed_note::is_key_name_valid(name) || key.len() != 33 || key[0] != ALG_COSIGNATURE_V1 {
            return Err(NoteError::Key);
        }
        let w = WitnessKey { name: name.to_owned(), key: SigningKey::try_from(&key[1..]).map_err(|_| NoteError::Key)? };
        if id.len() != 8 || u32::from_str_radix(id, 16) != Ok(w.key_id()) {
            return Err(NoteError::Key);
        }
        Ok(w)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        cosigner_key_id(&self.name, &self.key.verifying_key())
    }

    /// The verifier key, `<name>+<key id hex>+<base64(0x04 || public key)>`.
    pub fn vkey(&self) -> String {
        let mut key = vec![ALG_COSIGNATURE_V1];
        key.extend_from_slice(self.key.verifying_key().as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id(), BASE64_STANDARD.encode(key))
    }

    /// The cosignature line (`— <name> <base64(key id || time || signature)>`, with its
    /// newline) of a checkpoint body, made at `time` (seconds since the epoch).
    pub fn cosign(&self, body: &str, time: u64) -> String {
        let signature = self.key.sign(&cosigned_message(body.as_bytes(), time));
        let mut blob = self.key_id().to_be_bytes().to_vec();
        blob.extend_from_slice(&time.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        format!("— {} {}\n", self.name, BASE64_STANDARD.encode(blob))
    }
}

fn cosigner_key_id(name: &str, key: &VerifyingKey) -> u32 {
    let mut k = vec![ALG_COSIGNATURE_V1];
    k.extend_from_slice(key.as_bytes());
    signed_note::key_id(name, &k)
}

/// What a `cosignature/v1` signs: two header lines, then the checkpoint body.
fn cosigned_message(body: &[u8], time: u64) -> Vec<u8> {
    let mut msg = format!("cosignature/v1\ntime {time}\n").into_bytes();
    msg.extend_from_slice(body);
    msg
}

/// A witness's verifier key.
#[derive(Clone, Debug, PartialEq)]
pub struct WitnessVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

/// A cosignature that verified: who made it, and when.
#[derive(Clone, Debug, PartialEq)]
pub struct Cosignature {
    pub witness: String,
    pub key_id: u32,
    pub time: u64,
    /// The signature line, without its newline.
    pub line: String,
}

impl WitnessVerifier {
    pub fn parse(vkey: &str) -> Result<WitnessVerifier, NoteError> {
        let parts: Vec<&str> = vkey.trim().splitn(3, '+').collect();
        let [name, id, key] = parts[..] else { return Err(NoteError::Key) };
        let key = BASE64_STANDARD.decode(key).map_err(|_| NoteError::Key)?;
        if !signed_note::is_key_name_valid(name) || key.len() != 33 || key[0] != ALG_COSIGNATURE_V1 || id.len() != 8 {
            return Err(NoteError::Key);
        }
        let key = VerifyingKey::try_from(&key[1..]).map_err(|_| NoteError::Key)?;
        let id_num = u32::from_str_radix(id, 16).map_err(|_| NoteError::Key)?;
        if id_num != cosigner_key_id(name, &key) {
            return Err(NoteError::Key);
        }
        Ok(WitnessVerifier { name: name.to_owned(), id: id_num, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// This witness's cosignature among a note's signature lines: `Ok(None)` when it has
    /// none, an error when its line does not verify over the note's body.
    pub fn find(&self, note: &str) -> Result<Option<Cosignature>, NoteError> {
        let body = note_body(note)?;
        for line in signature_lines(note)? {
            let Some((name, blob)) = line.strip_prefix("— ").and_then(|l| l.split_once(' ')) else {
                return Err(NoteError::Malformed);
            };
            let blob = BASE64_STANDARD.decode(blob).map_err(|_| NoteError::Malformed)?;
            if name != self.name || blob.len() < 4 || blob[..4] != self.id.to_be_bytes() {
                continue;
            }
            let (time, sig) = split_timestamped(&blob[4..]).ok_or(NoteError::BadSignature)?;
            if self.key.verify_strict(&cosigned_message(body.as_bytes(), time), &sig).is_err() {
                return Err(NoteError::BadSignature);
            }
            return Ok(Some(Cosignature { witness: self.name.clone(), key_id: self.id, time, line: line.to_owned() }));
        }
        Ok(None)
    }
}

fn split_timestamped(blob: &[u8]) -> Option<(u64, ed25519_dalek::Signature)> {
    if blob.len() != 8 + 64 {
        return None;
    }
    let time = u64::from_be_bytes(blob[..8].try_into().ok()?);
    if time > i64::MAX as u64 {
        return None;
    }
    Some((time, ed25519_dalek::Signature::from_slice(&blob[8..]).ok()?))
}

// A cosigner is also a `signed_note` verifier, so notes carrying cosignatures open with
// that crate's parser as well.
impl Verifier for WitnessVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        split_timestamped(sig)
            .is_some_and(|(time, sig)| self.key.verify_strict(&cosigned_message(msg, time), &sig).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of Go's golang.org/x/mod/sumdb/note documentation and tests.
    const GO_SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str =
        "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const GO_SIG: &str =
        "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn log_keys_and_signatures_match_gos_note_example() {
        let key = LogKey::parse(GO_SKEY).unwrap();
        assert_eq!(key.vkey(), GO_VKEY);
        let mut note = Note::new(GO_TEXT.as_bytes(), &[]).unwrap();
        note.add_sigs(&[&key.signer]).unwrap();
        assert_eq!(String::from_utf8(note.to_bytes()).unwrap(), format!("{GO_TEXT}\n{GO_SIG}"));
    }

    fn checkpoint(origin: &str, size: u64) -> Checkpoint {
        Checkpoint { origin: origin.into(), size, root: Hash([7; 32]) }
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_only() {
        let (key, text) = LogKey::generate("observe.example.org/ufrecs").unwrap();
        assert!(text.starts_with("PRIVATE+KEY+observe.example.org/ufrecs+"));
        let c = checkpoint("observe.example.org/ufrecs", 42);
        let note = key.sign(&c);
        assert!(note.starts_with("observe.example.org/ufrecs\n42\nBwcH"), "{note}");
        assert_eq!(open_checkpoint(&note, key.vkey()), Ok(c.clone()));
        let (other, _) = LogKey::generate("observe.example.org/ufrecs").unwrap();
        assert!(matches!(open_checkpoint(&note, other.vkey()), Err(NoteError::Unsigned(_))));
        let forged = note.replacen("\n42\n", "\n43\n", 1);
        assert_eq!(open_checkpoint(&forged, key.vkey()), Err(NoteError::BadSignature));
        assert_eq!(Checkpoint::parse(&c.body()), Ok(c));
        for bad in
            ["a\n1\n", "a\n01\nBwcH\n", "\n1\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n", "a\n1\nBwcH\next\n"]
        {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cosignatures_verify_for_their_body_and_key_and_time() {
        let (w, text) = WitnessKey::generate("witness.example/w1").unwrap();
        let again = WitnessKey::parse(&text).unwrap();
        assert_eq!(again.vkey(), w.vkey());
        let v = WitnessVerifier::parse(&w.vkey()).unwrap();
        let (log, _) = LogKey::generate("log.example/x").unwrap();
        let note = log.sign(&checkpoint("log.example/x", 5));
        let cosigned = format!("{note}{}", w.cosign(note_body(&note).unwrap(), 1_700_000_000));
        let found = v.find(&cosigned).unwrap().unwrap();
        assert_eq!((found.time, found.witness.as_str()), (1_700_000_000, "witness.example/w1"));
        assert_eq!(found.line, signature_lines(&cosigned).unwrap()[1]);
        assert_eq!(v.find(&note), Ok(None));
        // The same line on another checkpoint, or with its time changed, fails.
        let other = log.sign(&checkpoint("log.example/x", 6));
        let moved = format!("{other}{}\n", found.line);
        assert_eq!(v.find(&moved), Err(NoteError::BadSignature));
        // The other implementation of the format (signed_note's parser) agrees.
        let parsed = Note::from_bytes(cosigned.as_bytes()).unwrap();
        let (verified, _) = parsed.verify(&VerifierList::new(vec![Box::new(v.clone())])).unwrap();
        assert_eq!(verified.len(), 1);
        // A log key is no witness key, and the reverse.
        assert!(WitnessVerifier::parse(log.vkey()).is_err());
        assert!(WitnessKey::parse(GO_SKEY).is_err());
        assert!(LogKey::parse(&text).is_err());
    }
}
