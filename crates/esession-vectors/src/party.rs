//! What a replayed party is made of, online or offline: its configuration from the vector's
//! inputs, its recorded randomness ([`Scripted`]), its recorded forms ([`Recording`]), the
//! comparison of what it sends with what the recording says it sent, and the outcome of a
//! replay ([`Outcome`]).

use crate::format::{Recorded, Vector, Who, hex, int_u128};
use crate::report::{Line, Verdict, short};
use esession_crypto::{
    CryptAlg, CryptoProvider, CtrCipher, DhKeyPair, HashAlg, ModpGroup, PrivateKey, Profile, SecretBytes,
    SignAlg,
};
use esession_forms::esession::{Offers, Wrapper};
use esession_forms::names::{Compress, Disclosure, Logging, PubkeyMethod, Security, StanzaType, Version};
use esession_forms::negotiation::Support;
use esession_forms::normalize::form_content;
use esession_negotiate::{Config, Established, FormKind, Shaper};
use esession_stanza::{Encrypted, SealOptions, hazmat};
use minidom::Element;
use serde_json::Value;
use std::collections::VecDeque;

/// The stanza namespace.
pub(crate) const CLIENT_NS: &str = "jabber:client";

/// How a replayed party ended a refused stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// The stanza it refused.
    pub(crate) seq: u64,
    /// The vector format's name of the failed check.
    pub(crate) check: String,
    /// The error condition sent back, or `silent`.
    pub(crate) condition: String,
    /// The fields named in the error, when the layer names them.
    pub(crate) fields: Option<Vec<String>>,
    /// Whether an error stanza was sent.
    pub(crate) error_sent: bool,
}

impl core::fmt::Display for Rejection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "refused stanza {}: {} ({})", self.seq, self.check, self.condition)?;
        if let Some(fields) = self.fields.as_ref().filter(|f| !f.is_empty()) {
            write!(f, " naming {}", fields.join(","))?;
        }
        Ok(())
    }
}

/// What a replayed party reached.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The session was established.
    pub(crate) established: bool,
    /// Its SAS.
    pub(crate) sas: Option<String>,
    /// Its K (4-message: K_final).
    pub(crate) k: Option<esession_negotiate::KeyCheck>,
    /// The party's own checks, by name after `stepN <party> `: its own stanzas reproduced,
    /// bodies decrypted, counters and state.
    pub(crate) lines: Vec<Line>,
    /// The stanza it refused, if any.
    pub(crate) rejected: Option<Rejection>,
    /// Why it neither established nor refused.
    pub(crate) incomplete: Option<String>,
}

impl Outcome {
    pub(crate) fn line(&mut self, name: String, verdict: Verdict) {
        self.lines.push(Line::new(name, verdict));
    }

    /// The lines of our own stanza `seq` compared with the recorded one.
    pub(crate) fn own(&mut self, seq: u64, check: Own) {
        self.line(format!("own stanza {seq} reproduced"), check.verdict);
        if let Some(why) = check.serialization {
            self.line(format!("own stanza {seq} content as the sender serialized it"), Verdict::Skip(why));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Randomness and forms

/// The party's recorded randomness: N, C_A, one DH exponent per group (Alice) or in order
/// (Bob, whatever group he picks); decoys and a random srshash are zeros (the recorded form
/// carries the sender's values); a DH draw the file does not script fails.
pub(crate) type Scripted =
    esession_negotiate::hazmat::ScriptedEntropy<getrandom::rand_core::UnwrapErr<getrandom::SysRng>>;

/// [`Scripted`] with N and C_A fixed.
pub(crate) fn scripted(nonce: Vec<u8>, counter: u128) -> Scripted {
    let mut s = Scripted::new(getrandom::rand_core::UnwrapErr(getrandom::SysRng));
    s.nonce = Some(nonce);
    s.counter = Some(counter);
    s.fill = Some(0);
    s.strict = true;
    s
}

/// Sends the recorded forms: layout, nonces and decoys are the sender's free choices.
pub(crate) struct Recording(pub(crate) VecDeque<Element>);

impl Shaper for Recording {
    fn shape(&mut self, _kind: FormKind, proposed: Element) -> Element {
        self.0.pop_front().unwrap_or(proposed)
    }
}

/// The `<x/>` of a stanza's ESession wrapper.
pub(crate) fn form_of(stanza: &Element) -> Option<&Element> {
    Wrapper::find(stanza).and_then(|w| Wrapper::unwrap(w).ok()).map(|(_, x)| x)
}

/// A queue of hex values from `inputs.<party>.random.<name>` (or `inputs.<party>.<name>`).
pub(crate) fn random_queue(v: &Vector, who: Who, names: &[&str]) -> VecDeque<Vec<u8>> {
    let Some(inputs) = v.inputs(who) else { return VecDeque::new() };
    for name in names {
        let list = inputs
            .pointer(&format!("/random/{name}"))
            .or_else(|| inputs.get(*name))
            .and_then(Value::as_array);
        if let Some(list) = list {
            return list.iter().filter_map(|x| hex(Some(x))).collect();
        }
    }
    VecDeque::new()
}

/// The party's nonce: recorded N_A/N_B, else its first `nonce` draw.
pub(crate) fn nonce_of(v: &Vector, who: Who) -> Option<Vec<u8>> {
    let key = match who {
        Who::Alice => "NA",
        Who::Bob => "NB",
    };
    v.pick(who, key).or_else(|| random_queue(v, who, &["nonce", "nonces"]).pop_front())
}

/// C_A: recorded, else Bob's `counter` draw (16 octets read as an integer).
pub(crate) fn counter_of(v: &Vector) -> Option<u128> {
    int_u128(v.value("CA")).or_else(|| int_u128(v.record(Who::Bob).and_then(|r| r.get("CA")))).or_else(|| {
        random_queue(v, Who::Bob, &["counter"]).pop_front().map(|b| {
            let mut a = [0u8; 16];
            let n = b.len().min(16);
            a[16 - n..].copy_from_slice(&b[b.len() - n..]);
            u128::from_be_bytes(a)
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Configuration

fn names<T: core::str::FromStr>(v: Option<&Value>) -> Option<Vec<T>> {
    let list = v?.as_array()?;
    Some(
        list.iter()
            .filter_map(|x| match x {
                Value::String(s) => s.parse().ok(),
                Value::Number(n) => n.to_string().parse().ok(),
                _ => None,
            })
            .collect(),
    )
}

fn groups(v: Option<&Value>) -> Option<Vec<ModpGroup>> {
    let list = v?.as_array()?;
    Some(
        list.iter()
            .filter_map(|x| match x {
                Value::Number(n) => {
                    n.as_u64().and_then(|n| u32::try_from(n).ok()).map(ModpGroup::from_number)
                }
                Value::String(s) => s.parse().ok(),
                _ => None,
            })
            .collect(),
    )
}

/// A party's configuration from the vector's inputs: Alice's `offers` (else the offers her
/// recorded request makes), Bob's `support` (else everything, as the vectors' DEFAULT_SUPPORT:
/// [`CryptoProvider::all`]), identity key, other shared secret.
pub(crate) fn config(v: &Vector, who: Who, offers: Option<&Offers>, identity: Option<PrivateKey>) -> Config {
    let mut cfg = Config::new(v.profile);
    if let Some(key) = identity {
        cfg = cfg.identified_by(key);
    }
    // Offered: from the inputs, else as recorded.
    let o = v.config(who, "offers");
    let get = |k: &str| o.and_then(|o| o.get(k));
    let all = CryptoProvider::all();
    cfg.provider = CryptoProvider {
        modp: groups(get("modp")).or_else(|| offers.map(|f| f.modp.clone())).unwrap_or(all.modp.clone()),
        crypt_algs: names(get("crypt_algs"))
            .or_else(|| offers.map(|f| f.crypt_algs.clone()))
            .unwrap_or(all.crypt_algs.clone()),
        hash_algs: names(get("hash_algs"))
            .or_else(|| offers.map(|f| f.hash_algs.clone()))
            .unwrap_or(all.hash_algs.clone()),
        sign_algs: names(get("sign_algs"))
            .or_else(|| offers.map(|f| f.sign_algs.clone()))
            .unwrap_or(all.sign_algs.clone()),
        sas_algs: names(get("sas_algs")).unwrap_or(all.sas_algs.clone()),
    };
    if let Some(l) = names::<Logging>(get("logging")).or_else(|| offers.map(|f| f.logging.clone())) {
        cfg.logging = l;
    }
    if let Some(s) = names::<Security>(get("security")).or_else(|| offers.map(|f| f.security.clone())) {
        cfg.security = s;
    }
    if let Some(c) = names::<Compress>(get("compress")).or_else(|| offers.map(|f| f.compress.clone())) {
        cfg.compress = c;
    }
    if let Some(s) = names::<StanzaType>(get("stanzas")).or_else(|| offers.map(|f| f.stanzas.clone())) {
        cfg.stanzas = s;
    }
    if let Some(m) = names::<PubkeyMethod>(get("init_pubkey")) {
        cfg.init_pubkey = m;
    }
    if let Some(m) = names::<PubkeyMethod>(get("resp_pubkey")) {
        cfg.resp_pubkey = m;
    }
    if let Some(n) =
        get("rekey_freq").and_then(Value::as_u64).or_else(|| offers.map(|f| u64::from(f.rekey_freq)))
    {
        cfg.rekey_freq = u32::try_from(n).unwrap_or(u32::MAX);
    }
    // Accepted: the vectors' parties support everything unless `support` says otherwise.
    let s = v.config(who, "support");
    let sget = |k: &str| s.and_then(|s| s.get(k));
    let own_keys = cfg.support.own_keys.clone();
    cfg.support = Support {
        crypto: CryptoProvider {
            modp: groups(sget("modp")).unwrap_or(all.modp.clone()),
            crypt_algs: names(sget("crypt_algs")).unwrap_or(all.crypt_algs.clone()),
            hash_algs: names(sget("hash_algs")).unwrap_or(all.hash_algs.clone()),
            sign_algs: names(sget("sign_algs")).unwrap_or(all.sign_algs.clone()),
            sas_algs: names(sget("sas_algs")).unwrap_or(all.sas_algs.clone()),
        },
        logging: names(sget("logging")).unwrap_or_else(|| vec![Logging::May, Logging::MustNot]),
        disclosure: names(sget("disclosure")).unwrap_or_else(|| vec![Disclosure::Never]),
        security: names(sget("security")).unwrap_or_else(|| vec![Security::E2e]),
        compress: names(sget("compress")).unwrap_or_else(|| vec![Compress::None]),
        stanzas: names(sget("stanzas"))
            .unwrap_or_else(|| vec![StanzaType::Message, StanzaType::Presence, StanzaType::Iq]),
        ver: names(sget("ver")).unwrap_or_else(|| vec![Version::V1_0]),
        init_pubkey: names(sget("init_pubkey"))
            .unwrap_or_else(|| vec![PubkeyMethod::Key, PubkeyMethod::Hash, PubkeyMethod::None]),
        own_keys,
        resp_none: names::<PubkeyMethod>(sget("resp_pubkey")).is_none_or(|m| m.contains(&PubkeyMethod::None)),
        rekey_freq_min: sget("rekey_freq_min")
            .and_then(Value::as_u64)
            .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        three_message: sget("modes")
            .and_then(Value::as_array)
            .is_none_or(|m| m.iter().any(|x| x.as_u64() == Some(3))),
        none_in_three_message: cfg.support.none_in_three_message,
        profile: v.profile,
    };
    let oss = v.pick(who, "OSS").or_else(|| hex(v.config(who, "oss"))).filter(|o| !o.is_empty());
    cfg.oss = oss.map(SecretBytes::new);
    if let Some(b) = v.config(who, "example11_types").and_then(Value::as_bool) {
        cfg.example11_types = b;
    }
    cfg
}

/// The identity key a party uses: the one of the negotiated algorithm, else its only key.
pub(crate) fn identity_key(v: &Vector, who: Who, alg: Option<&SignAlg>) -> Option<PrivateKey> {
    match alg {
        Some(alg) => v.private_key(who, alg),
        None => {
            let mut keys = v.private_keys(who);
            if keys.len() == 1 { keys.pop() } else { None }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Own stanzas

/// Our own stanza against the recorded one: the verdict, and when only the serialization of
/// encrypted content differs (a free choice of the sender, I16), why the octets could not be
/// compared.
#[derive(Debug)]
pub(crate) struct Own {
    pub(crate) verdict: Verdict,
    pub(crate) serialization: Option<String>,
}

impl From<Verdict> for Own {
    fn from(verdict: Verdict) -> Self {
        Self { verdict, serialization: None }
    }
}

/// Whether two stanzas carry the same form, `identity` and `mac` included (normalized).
pub(crate) fn same_form(profile: Profile, ours: &Element, recorded: &Element) -> Verdict {
    let f = |s: &Element| form_of(s).and_then(|x| form_content(profile, x, &[]).ok());
    match (f(ours), f(recorded)) {
        (Some(a), Some(b)) if a == b => Verdict::Ok,
        (Some(a), Some(b)) => {
            let at = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
            let ctx = |v: &[u8]| {
                String::from_utf8_lossy(&v[at.saturating_sub(40)..(at + 40).min(v.len())]).into_owned()
            };
            Verdict::Fail(format!(
                "the forms differ at octet {at}: expected ..{}.. got ..{}..",
                ctx(&b),
                ctx(&a)
            ))
        }
        (None, _) => Verdict::Fail("we sent no form".into()),
        (_, None) => Verdict::Fail("the recorded stanza has no form".into()),
    }
}

/// The `<c/>` of a stanza, parsed.
pub(crate) fn c_of(profile: Profile, stanza: &Element) -> Option<Result<Encrypted, String>> {
    let c = stanza.children().find(|c| c.is("c", esession_stanza::NS))?;
    Some(Encrypted::parse(profile, c).map_err(|e| e.to_string()))
}

/// The sender's recorded keys of an entry (`send`).
struct SentWith {
    cipher: Option<CtrCipher>,
    km: Vec<u8>,
    counter: u128,
    m: Option<Vec<u8>>,
    mcb: Option<Vec<u8>>,
}

fn sent_with(profile: Profile, default_alg: &CryptAlg, send: &Value) -> Option<SentWith> {
    let alg: CryptAlg = send
        .get("cipher")
        .and_then(Value::as_str)
        .map_or_else(|| default_alg.clone(), |s| s.parse().unwrap_or(CryptAlg::Unknown(s.into())));
    let cipher =
        hex(send.get("cipher_key")).and_then(|k| CtrCipher::new(&alg, profile, &SecretBytes::new(k)).ok());
    Some(SentWith {
        cipher,
        km: hex(send.get("mac_key"))?,
        counter: int_u128(send.get("counter_before"))?,
        m: hex(send.get("m")),
        mcb: hex(send.get("mac_counter_bytes")),
    })
}

/// Compares a `<c/>` we sent with the recorded one. Equal octets pass. Otherwise, with the
/// sender's recorded keys (`send`): the same `<data/>` with a MAC over the counter octets the
/// recorded sender chose (a Gajim sender's minimal octets, where ours are 16) passes; a
/// different content m that our `<c/>` still encrypts and MACs under the recorded keys and
/// counter passes (our keys and counter are the recorded ones) with the octet comparison
/// skipped: it is our own serialization of the content (I16: m is sender-defined); anything
/// else fails.
pub(crate) fn compare_c(
    profile: Profile,
    hash: &HashAlg,
    alg: &CryptAlg,
    ours: &Encrypted,
    recorded: &Encrypted,
    send: Option<&Value>,
) -> Own {
    if ours == recorded {
        return Verdict::Ok.into();
    }
    let same_fields = ours.data == recorded.data
        && ours.key == recorded.key
        && ours.new == recorded.new
        && ours.old == recorded.old;
    let Some(w) = send.and_then(|s| sent_with(profile, alg, s)) else {
        return Verdict::Fail(diff(ours, recorded)).into();
    };
    let mac_over = |c: &Encrypted, octets: &[u8]| hazmat::mac(hash, &w.km, &c.m_content(), octets).ok();
    if same_fields {
        let ours_ok = mac_over(ours, &hazmat::sender_counter(profile, w.counter)).as_deref()
            == Some(ours.mac.as_slice());
        let theirs_ok =
            w.mcb.as_ref().and_then(|o| mac_over(recorded, o)).as_deref() == Some(recorded.mac.as_slice());
        return if ours_ok && theirs_ok {
            Verdict::Ok.into()
        } else {
            Verdict::Fail(format!(
                "the MAC differs: expected {} got {}",
                short(&recorded.mac),
                short(&ours.mac)
            ))
            .into()
        };
    }
    let (Some(cipher), Some(m)) = (&w.cipher, &w.m) else {
        return Verdict::Fail(diff(ours, recorded)).into();
    };
    let ours_m = ours.data.clone().map(|mut d| {
        let _ = cipher.decrypt(w.counter, &mut d);
        d
    });
    let verifies = hazmat::verify(profile, hash, &w.km, ours, w.counter).is_ok();
    let ours_m = ours_m.unwrap_or_default();
    let trimmed = if profile == Profile::Gajim { trim_spaces(&ours_m) } else { &ours_m };
    if verifies && trimmed != m.as_slice() && !ours_m.is_empty() {
        return Own {
            verdict: Verdict::Ok,
            serialization: Some(format!(
                "our serialization of the content differs from the sender's m (I16: m is sender-defined, so the octets cannot be compared): expected {} got {}; our <c/> encrypts and MACs it under the recorded keys and counter",
                show_text(m),
                show_text(trimmed)
            )),
        };
    }
    Verdict::Fail(diff(ours, recorded)).into()
}

fn trim_spaces(b: &[u8]) -> &[u8] {
    let end = b.iter().rposition(|c| *c != b' ').map_or(0, |i| i + 1);
    &b[..end]
}

fn show_text(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.len() > 120 { format!("{:?}..", s.chars().take(120).collect::<String>()) } else { format!("{s:?}") }
}

fn diff(ours: &Encrypted, recorded: &Encrypted) -> String {
    if ours.data != recorded.data {
        let d = |x: &Option<Vec<u8>>| x.as_deref().map_or_else(|| "none".to_owned(), short);
        return format!("<data/> expected {} got {}", d(&recorded.data), d(&ours.data));
    }
    if ours.key != recorded.key || ours.new != recorded.new || ours.old != recorded.old {
        return format!(
            "<key/>/<new/>/<old/> differ: expected key {} new {:?} {} old, got key {} new {:?} {} old",
            recorded.key.is_some(),
            recorded.new,
            recorded.old.len(),
            ours.key.is_some(),
            ours.new,
            ours.old.len()
        );
    }
    format!("the MAC differs: expected {} got {}", short(&recorded.mac), short(&ours.mac))
}

/// The exponents of the re-keys a party initiates, in order: `rekey[i].x`, else its
/// `rekey_dh` draws.
pub(crate) fn rekey_exponents(v: &Vector, who: Who) -> VecDeque<Vec<u8>> {
    let from_entries: VecDeque<Vec<u8>> =
        v.v.get("rekey")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|r| r.get("initiator").and_then(Value::as_str) == Some(who.as_str()))
            .filter_map(|r| hex(r.get("x")))
            .collect();
    if from_entries.is_empty() { random_queue(v, who, &["rekey_dh"]) } else { from_entries }
}

/// Re-seals our own recorded XEP-0200 stanza with the recorded content m (the sender's
/// serialization, I16), to keep the sending state in step; whether our `<c/>` is the recorded
/// one.
pub(crate) fn reseal_own(
    v: &Vector,
    rec: &Recorded,
    stanza: &Element,
    est: &mut Established,
    rekeys: &mut VecDeque<Vec<u8>>,
) -> Own {
    let Some(Ok(recorded)) = c_of(v.profile, stanza) else {
        return Verdict::Fail("the recorded stanza has no readable <c/>".into()).into();
    };
    let entry = v.entry_of(rec);
    let send = entry.as_ref().and_then(|e| e.send());
    let Some(send) = send else {
        return Verdict::Skip("no XEP-0200 entry records its content m".into()).into();
    };
    let m = hex(send.get("m")).filter(|m| !m.is_empty() || send.get("m_final").is_some_and(|x| !x.is_null()));
    let rekey = match recorded.key {
        Some(_) => match rekeys.pop_front() {
            Some(x) => match DhKeyPair::from_exponent(est.session().params().group, &x) {
                Ok(p) => Some(p),
                Err(e) => return Verdict::Fail(format!("the recorded re-key exponent: {e}")).into(),
            },
            None => {
                return Verdict::Skip("the stanza starts a re-key whose exponent is not in the file".into())
                    .into();
            }
        },
        None => None,
    };
    let params = est.session().params().clone();
    let sealed =
        est.session_mut().seal(m.as_deref(), SealOptions { rekey, publish_old: !recorded.old.is_empty() });
    match sealed {
        Ok(ours) => compare_c(v.profile, &params.hash, &params.cipher, &ours, &recorded, Some(send)),
        Err(e) => Verdict::Fail(format!("sealing it failed: {e}")).into(),
    }
}

/// The content of a recorded `<c/>` (its entry's m) as a stanza to encrypt: the element the
/// entry names (`message` by default) with the children m holds; `drop_created` leaves out the
/// SHIM `Created` header, which the offline sender adds itself (I30).
pub(crate) fn content_of(send: &Value, drop_created: bool) -> Option<Element> {
    let m = hex(send.get("m")).filter(|m| !m.is_empty())?;
    let name = send.get("stanza").and_then(Value::as_str).unwrap_or("message");
    let children = esession_stanza::content::parse(CLIENT_NS, &m).ok()?;
    let mut out = Element::bare(name, CLIENT_NS);
    if name == "message" {
        // Chat messages are `type='chat'` (I17).
        if let Ok(n) = esession_forms::xml::attr_name("type") {
            out.set_attr(minidom::rxml::Namespace::NONE, n, "chat".to_owned());
        }
    }
    for c in children {
        if drop_created && c.is("headers", "http://jabber.org/protocol/shim") {
            continue;
        }
        out.append_child(c);
    }
    Some(out)
}

/// The content the script gives an operation (`negotiate` with `piggyback`, `offline_start`
/// with `body`), when no XEP-0200 entry records its m: a chat message with that body and the
/// operation's chat state.
pub(crate) fn script_content(v: &Vector, op: &str, field: &str) -> Option<Element> {
    let ops = v.v.pointer("/inputs/script")?.as_array()?;
    let o = ops.iter().find(|o| o.get("op").and_then(Value::as_str) == Some(op))?;
    let body = o.get(field)?.as_str()?;
    let mut m = Element::builder("message", CLIENT_NS)
        .append(Element::builder("body", CLIENT_NS).append(body))
        .build();
    if let Ok(n) = esession_forms::xml::attr_name("type") {
        m.set_attr(minidom::rxml::Namespace::NONE, n, "chat".to_owned());
    }
    if let Some(cs) = o.get("chatstate").and_then(Value::as_str) {
        m.append_child(Element::bare(cs, "http://jabber.org/protocol/chatstates"));
    }
    Some(m)
}

/// The body of a decrypted stanza.
pub(crate) fn body_of(stanza: &Element) -> Option<String> {
    stanza.children().find(|c| c.name() == "body").map(Element::text)
}

/// The vector format's check name for a XEP-0200 failure.
pub(crate) fn stanza_check(e: &esession_stanza::Error) -> &'static str {
    use esession_stanza::{Error as E, TerminationCause as T};
    match e {
        E::Terminated(T::Xml | T::Compression) => "xep0200-xml",
        E::Terminated(T::New) => "xep0200-new",
        E::Terminated(T::RekeyRange) => "rekey-range",
        _ => "xep0200-mac",
    }
}

/// The recorded body of the peer's stanza `rec` (its entry's `recv.body`).
pub(crate) fn recorded_body(v: &Vector, rec: &Recorded) -> Option<String> {
    let e = v.entry_of(rec)?;
    let body = e.recv().and_then(|r| r.get("body")).or_else(|| e.value.get("body"));
    body.and_then(Value::as_str).map(str::to_owned)
}

/// Checks a decrypted body against the recording.
pub(crate) fn body_line(v: &Vector, rec: &Recorded, body: Option<String>) -> (String, Verdict) {
    match recorded_body(v, rec) {
        Some(exp) => {
            let got = body.unwrap_or_default();
            let verdict =
                if got == exp { Verdict::Ok } else { Verdict::Fail(format!("expected {exp:?} got {got:?}")) };
            (format!("stanza {} body", rec.seq), verdict)
        }
        None => (format!("stanza {} decrypted", rec.seq), Verdict::Ok),
    }
}
