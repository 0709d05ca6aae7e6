//! Reading a vector file (shared/vectors/README.md, README-xep.md): the per-file kinds, the
//! value accessors, the recorded stanzas in order, and the parties' keys.
//!
//! Two layouts of positive vectors exist. The original one ([`Kind::Gajim`], the `gajim-*`
//! files) has `negotiation_stanzas` and `xep0200` entries with their `wire`, keeps each party's
//! RSA key at `inputs.<party>.rsa`, and has neither a trusted list nor `sign_alg`. The
//! [`Kind::Xep`] layout adds `transcript` (every stanza with its `seq`), `inputs.<party>.config`
//! (`offers`, `support`, `keys`, `trusted`), re-keys, termination and XEP-0187. Keys are read
//! from both places whatever the layout; what a layout lacks is derived (see
//! [`Vector::trusted`] and [`Vector::sign_alg`]).

use esession_crypto::{CryptAlg, HashAlg, ModpGroup, PrivateKey, Profile, PublicKey, SignAlg, mpi};
use esession_negotiate::Jid;
use minidom::Element;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The kinds of file the checker reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The original layout (README.md): `negotiation_stanzas` and `xep0200` wires.
    Gajim,
    /// README-xep.md's layout: a `transcript`, configured parties, re-keys, termination,
    /// offline sessions.
    Xep,
    /// README-xep.md's negative file: variants of a base vector with their expected outcome.
    Negative,
}

/// A party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    Alice,
    Bob,
}

impl Who {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Who::Alice => "alice",
            Who::Bob => "bob",
        }
    }

    pub(crate) fn peer(self) -> Who {
        match self {
            Who::Alice => Who::Bob,
            Who::Bob => Who::Alice,
        }
    }

    /// The side letter of the value names (`IDA`, `macB`...).
    pub(crate) fn side(self) -> &'static str {
        match self {
            Who::Alice => "A",
            Who::Bob => "B",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Who> {
        match s {
            "alice" => Some(Who::Alice),
            "bob" => Some(Who::Bob),
            _ => None,
        }
    }
}

/// An octet string of the format: lower-case hex (an odd number of digits is read with a
/// leading zero, as integers are written without one), or a JSON integer as minimal octets.
pub(crate) fn hex(v: Option<&Value>) -> Option<Vec<u8>> {
    match v? {
        Value::String(s) => {
            if s.len() % 2 == 1 {
                hex::decode(format!("0{s}")).ok()
            } else {
                hex::decode(s).ok()
            }
        }
        Value::Number(n) => n.as_u64().map(|n| mpi::encode_u128(u128::from(n))),
        _ => None,
    }
}

/// A counter (a hex integer of at most 128 bits).
pub(crate) fn int_u128(v: Option<&Value>) -> Option<u128> {
    mpi::decode_u128(&hex(v)?).ok()
}

/// One recorded stanza, in the order the parties exchanged them.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    /// Its position (`transcript[i].seq`; for files without a transcript, the index in the
    /// negotiation stanzas followed by the XEP-0200 wires).
    pub(crate) seq: u64,
    /// Whose it is: the sender, except a PEP items result, which carries Alice's options to Bob.
    pub(crate) from: Who,
    /// `negotiation`, `xep0200`, `offline-start`, `pep-publish`, `pep-items`, `pep-withdraw`.
    pub(crate) kind: String,
    /// The stanza.
    pub(crate) xml: String,
    /// For files without a transcript: the index of its XEP-0200 entry.
    pub(crate) entry: Option<usize>,
}

/// An XEP-0200 entry: `xep0200[i]`, or a termination's `terminate`/`ack`.
#[derive(Clone, Debug)]
pub(crate) struct Entry<'a> {
    /// `xep0200[i]`, `termination.terminate`, `termination.ack`.
    pub(crate) label: String,
    /// Its index in `xep0200` (None for the termination's).
    pub(crate) index: Option<usize>,
    pub(crate) value: &'a Value,
}

impl Entry<'_> {
    pub(crate) fn seq(&self) -> Option<u64> {
        self.value.get("seq").and_then(Value::as_u64)
    }

    pub(crate) fn from(&self) -> Option<Who> {
        let f = self.value.get("from").or_else(|| self.value.pointer("/send/from"));
        f.and_then(Value::as_str).and_then(Who::parse)
    }

    pub(crate) fn send(&self) -> Option<&Value> {
        self.value.get("send").filter(|s| s.is_object())
    }

    pub(crate) fn recv(&self) -> Option<&Value> {
        self.value.get("recv").filter(|s| s.is_object())
    }

    /// Whether its `<c/>` travels in a negotiation stanza or an offline start.
    pub(crate) fn piggybacked(&self) -> bool {
        let flag = |k: &str| {
            let v = self.value.get(k).or_else(|| self.value.pointer(&format!("/send/{k}")));
            // The oracle writes true, "True" or 1.
            match v {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => s.eq_ignore_ascii_case("true") || s == "1",
                Some(Value::Number(n)) => n.as_u64() == Some(1),
                _ => false,
            }
        };
        flag("in_negotiation_stanza") || flag("in_offline_start")
    }
}

/// A vector file, read.
pub(crate) struct Vector {
    /// Its `name` (or its path).
    pub(crate) name: String,
    pub(crate) v: Value,
    pub(crate) kind: Kind,
    /// The file's profile.
    pub(crate) profile: Profile,
    pub(crate) path: PathBuf,
}

impl Vector {
    /// Reads a file.
    ///
    /// # Errors
    /// An unreadable file, not JSON, not an object, or a `profile`/`kind` this checker does not
    /// know (they change what every value means: refused, not ignored).
    pub(crate) fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
        Self::from_value(path, v)
    }

    /// A file already parsed.
    ///
    /// # Errors
    /// As [`Vector::read`].
    pub(crate) fn from_value(path: &Path, v: Value) -> Result<Self, String> {
        if !v.is_object() {
            return Err("not a JSON object".into());
        }
        let name =
            v.get("name").and_then(Value::as_str).map_or_else(|| path.display().to_string(), str::to_owned);
        let profile = match v.get("profile").and_then(Value::as_str).unwrap_or("xep") {
            "xep" => Profile::Xep,
            "gajim" => Profile::Gajim,
            other => return Err(format!("unknown profile {other:?}: refused")),
        };
        let kind = match v.get("kind").and_then(Value::as_str) {
            Some("negative") => Kind::Negative,
            None | Some("positive") if v.get("transcript").is_some_and(Value::is_array) => Kind::Xep,
            None | Some("positive") => Kind::Gajim,
            Some(other) => return Err(format!("unknown file kind {other:?}: refused")),
        };
        Ok(Self { name, v, kind, profile, path: path.to_owned() })
    }

    /// `NAME what`.
    pub(crate) fn n(&self, what: &str) -> String {
        format!("{} {what}", self.name)
    }

    pub(crate) fn values(&self) -> Option<&Map<String, Value>> {
        self.v.get("values").and_then(Value::as_object)
    }

    pub(crate) fn value(&self, key: &str) -> Option<&Value> {
        self.values().and_then(|m| m.get(key)).filter(|v| !v.is_null())
    }

    pub(crate) fn value_hex(&self, key: &str) -> Option<Vec<u8>> {
        hex(self.value(key))
    }

    pub(crate) fn value_str(&self, key: &str) -> Option<&str> {
        self.value(key).and_then(Value::as_str)
    }

    /// `<party>_record`.
    pub(crate) fn record(&self, who: Who) -> Option<&Map<String, Value>> {
        self.v.get(format!("{}_record", who.as_str())).and_then(Value::as_object)
    }

    /// A value as the party recorded it, else from `values`.
    pub(crate) fn pick(&self, who: Who, key: &str) -> Option<Vec<u8>> {
        hex(self.record(who).and_then(|r| r.get(key))).or_else(|| self.value_hex(key))
    }

    /// `inputs.<party>`.
    pub(crate) fn inputs(&self, who: Who) -> Option<&Value> {
        self.v.pointer(&format!("/inputs/{}", who.as_str()))
    }

    /// `inputs.<party>.config.<key>`.
    pub(crate) fn config(&self, who: Who, key: &str) -> Option<&Value> {
        self.inputs(who).and_then(|i| i.get("config")).and_then(|c| c.get(key)).filter(|v| !v.is_null())
    }

    pub(crate) fn mode(&self) -> Option<u64> {
        self.value("mode")
            .and_then(Value::as_u64)
            .or_else(|| self.v.pointer("/inputs/mode").and_then(Value::as_u64))
    }

    pub(crate) fn is_offline(&self) -> bool {
        self.value_str("kind") == Some("offline")
            || self.v.pointer("/inputs/kind").and_then(Value::as_str) == Some("offline")
            || self.v.get("offline").is_some_and(Value::is_object)
    }

    pub(crate) fn hash(&self) -> Result<HashAlg, String> {
        let h: HashAlg =
            self.value_str("hash").unwrap_or("sha256").parse().unwrap_or(HashAlg::Unknown(String::new()));
        if h.is_supported() {
            Ok(h)
        } else {
            Err(format!("hash {:?} is not implemented", self.value_str("hash")))
        }
    }

    pub(crate) fn crypt_alg(&self) -> Result<CryptAlg, String> {
        let s = self.value_str("crypt_alg").ok_or("no crypt_alg")?;
        let c: CryptAlg = s.parse().unwrap_or(CryptAlg::Unknown(String::new()));
        if c.is_supported() { Ok(c) } else { Err(format!("cipher {s:?} is not implemented")) }
    }

    pub(crate) fn group(&self) -> Result<ModpGroup, String> {
        let g = match self.value("modp_group") {
            Some(Value::Number(n)) => {
                ModpGroup::from_number(u32::try_from(n.as_u64().unwrap_or(0)).unwrap_or(0))
            }
            Some(Value::String(s)) => s.parse().map_err(|e| format!("modp_group: {e}"))?,
            _ => return Err("no modp_group".into()),
        };
        if g.is_supported() { Ok(g) } else { Err(format!("MODP group {g} is not implemented")) }
    }

    // -----------------------------------------------------------------------------------------
    // Keys

    /// The key objects of a party: `inputs.<party>.config.keys.{rsa,dsa}` (README-xep.md) and
    /// `inputs.<party>.{rsa,dsa}` (the gajim layout).
    fn key_objects(&self, who: Who) -> Vec<(&'static str, &Value)> {
        self.key_objects_at(who)
            .into_iter()
            .filter(|(_, _, k)| k.is_object())
            .map(|(_, kind, k)| (kind, k))
            .collect()
    }

    /// Every key the file gives a party, with where: `config.keys` or `inputs` (an object or
    /// not: the structure check refuses what does not parse).
    pub(crate) fn key_objects_at(&self, who: Who) -> Vec<(&'static str, &'static str, &Value)> {
        let mut out = Vec::new();
        for kind in ["rsa", "dsa"] {
            if let Some(k) = self.config(who, "keys").and_then(|k| k.get(kind)).filter(|k| !k.is_null()) {
                out.push(("config.keys", kind, k));
            }
            if let Some(k) = self.inputs(who).and_then(|i| i.get(kind)).filter(|k| !k.is_null()) {
                out.push(("inputs", kind, k));
            }
        }
        out
    }

    /// The party's private identity keys.
    pub(crate) fn private_keys(&self, who: Who) -> Vec<PrivateKey> {
        self.key_objects(who).into_iter().filter_map(|(kind, k)| private_of(kind, k)).collect()
    }

    /// The party's private key for `alg`.
    pub(crate) fn private_key(&self, who: Who, alg: &SignAlg) -> Option<PrivateKey> {
        self.private_keys(who).into_iter().find(|k| k.public_key().alg() == *alg)
    }

    /// The party's public identity keys (of its private keys, or public ones alone).
    pub(crate) fn public_keys(&self, who: Who) -> Vec<PublicKey> {
        let mut out: Vec<PublicKey> = Vec::new();
        for (kind, k) in self.key_objects(who) {
            let key = private_of(kind, k).map(|p| p.public_key()).or_else(|| public_of(k));
            if let Some(key) = key.filter(|key| !out.contains(key)) {
                out.push(key);
            }
        }
        out
    }

    /// The keys the party trusts for its peer: `config.trusted`, or, when the file has no
    /// trusted list (the gajim layout), the peer's own public keys. The flag says which.
    pub(crate) fn trusted(&self, who: Who) -> (Vec<PublicKey>, bool) {
        match self.config(who, "trusted").and_then(Value::as_array) {
            Some(list) => (list.iter().filter_map(public_of).collect(), false),
            None => (self.public_keys(who.peer()), true),
        }
    }

    /// The signature algorithm of the identities: `values.sign_alg`, else the type of the
    /// recorded pubKey, else the type of the only kind of key the parties hold (the gajim
    /// layout has no `sign_alg`).
    pub(crate) fn sign_alg(&self) -> Option<SignAlg> {
        if let Some(s) = self.value_str("sign_alg") {
            return Some(s.parse().unwrap_or(SignAlg::Unknown(String::new())));
        }
        for key in ["pubKeyA", "pubKeyB"] {
            let text = self.value_hex(key).and_then(|b| String::from_utf8(b).ok()).unwrap_or_default();
            if text.contains("RSAKeyValue") {
                return Some(SignAlg::RsaSha256);
            }
            if text.contains("DSAKeyValue") {
                return Some(SignAlg::DsaSha256);
            }
        }
        let mut algs: Vec<SignAlg> = Vec::new();
        for who in [Who::Alice, Who::Bob] {
            for k in self.public_keys(who) {
                if !algs.contains(&k.alg()) {
                    algs.push(k.alg());
                }
            }
        }
        if algs.len() == 1 { algs.pop() } else { None }
    }

    // -----------------------------------------------------------------------------------------
    // Stanzas

    /// The recorded stanzas, in order: the transcript (without error stanzas and what only the
    /// server sees), or the negotiation stanzas followed by the XEP-0200 wires.
    pub(crate) fn recorded(&self) -> Vec<Recorded> {
        if let Some(t) = self.v.get("transcript").and_then(Value::as_array) {
            // Malformed entries are refused by the structure check (a FAIL line).
            return t.iter().filter_map(|e| transcript_entry(e).ok().flatten()).collect();
        }
        let piggy: Vec<usize> = self
            .v
            .get("xep0200")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .filter(|(i, e)| Entry { label: String::new(), index: Some(*i), value: e }.piggybacked())
            .map(|(i, _)| i)
            .collect();
        let mut piggy = piggy.into_iter();
        let mut out = Vec::new();
        for s in self.v.get("negotiation_stanzas").and_then(Value::as_array).into_iter().flatten() {
            let (Some(from), Some(xml)) = (
                s.get("from").and_then(Value::as_str).and_then(Who::parse),
                s.get("xml").and_then(Value::as_str),
            ) else {
                continue;
            };
            let entry = if xml.contains("xep-0200.html#ns") { piggy.next() } else { None };
            out.push(Recorded {
                seq: out.len() as u64,
                from,
                kind: "negotiation".into(),
                xml: xml.into(),
                entry,
            });
        }
        for (i, e) in self.v.get("xep0200").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let wire = e.get("wire").or_else(|| e.pointer("/send/wire")).and_then(Value::as_str);
            let from = e.get("from").and_then(Value::as_str).and_then(Who::parse);
            if let (Some(from), Some(xml)) = (from, wire) {
                out.push(Recorded {
                    seq: out.len() as u64,
                    from,
                    kind: "xep0200".into(),
                    xml: xml.into(),
                    entry: Some(i),
                });
            }
        }
        out
    }

    /// Every XEP-0200 entry: `xep0200`, then the termination's `terminate` and `ack`.
    pub(crate) fn entries(&self) -> Vec<Entry<'_>> {
        let mut out: Vec<Entry<'_>> = self
            .v
            .get("xep0200")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, value)| Entry { label: format!("xep0200[{i}]"), index: Some(i), value })
            .collect();
        for k in ["terminate", "ack"] {
            if let Some(value) = self.v.pointer(&format!("/termination/{k}")).filter(|e| e.is_object()) {
                out.push(Entry { label: format!("termination.{k}"), index: None, value });
            }
        }
        out
    }

    /// The entry of a recorded stanza's `<c/>`, if any.
    pub(crate) fn entry_of(&self, rec: &Recorded) -> Option<Entry<'_>> {
        let entries = self.entries();
        match rec.entry {
            Some(i) => entries.into_iter().find(|e| e.index == Some(i)),
            None => entries.into_iter().find(|e| e.seq() == Some(rec.seq)),
        }
    }

    /// The transcript stanza `seq`.
    pub(crate) fn transcript_xml(&self, seq: u64) -> Option<&str> {
        self.v
            .get("transcript")
            .and_then(Value::as_array)?
            .iter()
            .find(|t| t.get("seq").and_then(Value::as_u64) == Some(seq))?
            .get("xml")?
            .as_str()
    }

    /// Alice's and Bob's JIDs as the recorded request addresses them.
    pub(crate) fn jids(&self, stanzas: &[Recorded]) -> Result<(Jid, Jid), String> {
        let attr = |who: Who, name: &str| -> Option<String> {
            let s =
                stanzas.iter().find(|s| s.from == who && s.kind != "pep-items" && s.kind != "pep-publish")?;
            parse_xml(&s.xml).ok()?.attr(name).map(str::to_owned)
        };
        let alice = attr(Who::Alice, "from")
            .or_else(|| attr(Who::Bob, "to"))
            .unwrap_or_else(|| "alice@example.org/pda".into());
        let bob = attr(Who::Alice, "to")
            .or_else(|| attr(Who::Bob, "from"))
            .unwrap_or_else(|| "bob@example.com/laptop".into());
        let jid = |s: &str| Jid::new(s).map_err(|e| format!("JID {s:?}: {e}"));
        Ok((jid(&alice)?, jid(&bob)?))
    }
}

/// The transcript kinds of README-xep.md.
pub(crate) const TRANSCRIPT_KINDS: [&str; 7] =
    ["negotiation", "xep0200", "offline-start", "pep-publish", "pep-items", "pep-withdraw", "error"];

/// One transcript entry: Ok(None) for an error stanza (not replayed).
///
/// # Errors
/// An entry that is not one of README-xep.md: no `seq`, `xml` or `kind`, an unknown `kind`, a
/// `from`/`to` that is not `alice`, `bob` or (PEP IQs only) `server`, or a stanza to its sender.
pub(crate) fn transcript_entry(e: &Value) -> Result<Option<Recorded>, String> {
    let seq = e.get("seq").and_then(Value::as_u64).ok_or("no seq")?;
    let kind = e.get("kind").and_then(Value::as_str).ok_or("no kind")?;
    if !TRANSCRIPT_KINDS.contains(&kind) {
        return Err(format!("unknown kind {kind:?}: refused"));
    }
    let xml = e.get("xml").and_then(Value::as_str).ok_or("no xml")?;
    let party = |k: &str| -> Result<Option<Who>, String> {
        match e.get(k).and_then(Value::as_str) {
            Some("server") if kind.starts_with("pep-") => Ok(None),
            Some(s) => Who::parse(s)
                .map(Some)
                .ok_or_else(|| format!("{k} {s:?} is not alice or bob (or the server of a PEP IQ): refused")),
            None => Err(format!("no {k}")),
        }
    };
    let (from, to) = (party("from")?, party("to")?);
    if from.is_some() && from == to {
        return Err("a stanza to its own sender: refused".into());
    }
    if kind == "error" {
        return Ok(None);
    }
    // A PEP items result carries Alice's options to Bob: it counts as hers.
    let who = if kind == "pep-items" { Some(Who::Alice) } else { from };
    let who = who.ok_or_else(|| format!("a {kind} stanza from the server"))?;
    Ok(Some(Recorded { seq, from: who, kind: kind.to_owned(), xml: xml.to_owned(), entry: None }))
}

/// Whether a key object of the file parses: a private key of `kind` (`rsa`, `dsa`), or a
/// public key (`public`, or a key object of `kind` with public parts only).
pub(crate) fn key_parses(kind: &str, k: &Value) -> bool {
    (kind != "public" && private_of(kind, k).is_some()) || public_of(k).is_some()
}

/// A private key object: RSA `{n, e, d}`, DSA `{p, q, g, y, x}`.
fn private_of(kind: &str, k: &Value) -> Option<PrivateKey> {
    let h = |f: &str| hex(k.get(f));
    match kind {
        "rsa" => PrivateKey::rsa_from_components(&h("n")?, &h("e")?, &h("d")?).ok(),
        "dsa" => PrivateKey::dsa_from_components(&h("p")?, &h("q")?, &h("g")?, &h("y")?, &h("x")?).ok(),
        _ => None,
    }
}

/// A public key object: RSA `{n, e}` or DSA `{p, q, g, y}`.
fn public_of(k: &Value) -> Option<PublicKey> {
    let h = |f: &str| hex(k.get(f));
    if let (Some(n), Some(e)) = (h("n"), h("e")) {
        return PublicKey::rsa(&n, &e).ok();
    }
    PublicKey::dsa(&h("p")?, &h("q")?, &h("g")?, &h("y")?).ok()
}

/// Parses a recorded stanza.
///
/// # Errors
/// Not well-formed.
pub(crate) fn parse_xml(xml: &str) -> Result<Element, String> {
    esession_forms::xml::parse(xml).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_reads_odd_integers_and_numbers() {
        assert_eq!(hex(Some(&Value::String("10001".into()))), Some(vec![1, 0, 1]));
        assert_eq!(hex(Some(&serde_json::json!(65537))), Some(vec![1, 0, 1]));
        assert_eq!(hex(Some(&Value::String(String::new()))), Some(vec![]));
        assert_eq!(hex(Some(&Value::String("zz".into()))), None);
        assert_eq!(int_u128(Some(&Value::String("ff".into()))), Some(255));
    }

    #[test]
    fn unknown_profile_and_kind_are_refused() {
        let p = Path::new("x.json");
        assert!(Vector::from_value(p, serde_json::json!({"profile": "otr"})).is_err());
        assert!(Vector::from_value(p, serde_json::json!({"kind": "mutant"})).is_err());
        let v = Vector::from_value(p, serde_json::json!({"kind": "negative"})).map(|v| v.kind);
        assert_eq!(v.ok(), Some(Kind::Negative));
    }
}
