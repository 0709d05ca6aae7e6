//! An established ESession (XEP-0116 §5): made in one place from a verified negotiation (or
//! offline start), then application stanzas, termination with an encrypted terminate form and
//! its encrypted acknowledgement, and nothing sent after either.

use crate::sigma::{Algs, Proof};
use esession_crypto::kdf::{self, SessionKeys, cipher_key};
use esession_crypto::{DhKeyPair, ModpGroup, Profile, PublicKey, Sas};
use esession_forms::dataform::DataForm;
use esession_forms::esession::{Response, Terminate, Wrapper};
use esession_forms::names::{Compress, Disclosure, Logging, StanzaType};
use esession_stanza::kept::{Fields, put_field};
use esession_stanza::{DirectionKeys, EncryptOptions, Params, Session};
use jid::Jid;
use minidom::Element;
use rand_core::CryptoRng;

/// The negotiated values the session needs.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) logging: Logging,
    pub(crate) disclosure: Disclosure,
    pub(crate) stanzas: Vec<StanzaType>,
    pub(crate) compress: Compress,
    pub(crate) rekey_freq: u32,
    pub(crate) group: ModpGroup,
}

impl Settings {
    /// The settings a response (or an offline start) chose.
    pub(crate) fn chosen(r: &Response) -> Self {
        Self {
            logging: r.logging.clone(),
            disclosure: r.disclosure.clone(),
            stanzas: r.stanzas.clone(),
            compress: r.compress.clone(),
            rekey_freq: r.rekey_freq,
            group: r.modp,
        }
    }
}

/// Which side of the key derivation we are (our sending keys are the initiator's or the
/// responder's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Initiator,
    Responder,
}

/// Everything a session is made of, besides the proof.
pub(crate) struct Opening<'a> {
    pub(crate) algs: &'a Algs,
    pub(crate) settings: &'a Settings,
    /// The keys of the session (4-message: from K_final; else from K).
    pub(crate) keys: &'a SessionKeys,
    pub(crate) side: Side,
    /// Our counter after our identity block, and the peer's after theirs (A9).
    pub(crate) send_counter: u128,
    pub(crate) recv_counter: u128,
    /// Our DH key pair of the negotiation (kept for re-keys) and the peer's public value.
    pub(crate) own: DhKeyPair,
    pub(crate) peer_public: Vec<u8>,
    pub(crate) peer: Jid,
    pub(crate) thread: String,
    pub(crate) sas: Option<Sas>,
    pub(crate) retained_secret_used: bool,
    /// A one-way check value of that K (K is destroyed once the keys are derived,
    /// X116-4.5.3-05).
    pub(crate) key_check: KeyCheck,
    /// The K the keys came from, kept only in hazmat builds for known-answer checks.
    #[cfg(feature = "hazmat")]
    pub(crate) k: esession_crypto::SecretBytes,
}

/// Content that came encrypted with a negotiation message: the stanza with its decrypted
/// content, the names of the children that came in clear beside it outside what XEP-0200 §5
/// allows (dropped), and the names of the children kept in clear besides `<thread/>` (not
/// covered by the MAC).
pub type Attached = (Element, Vec<String>, Vec<String>);

/// A one-way check value of a session's K: HMAC-SHA-256 keyed with K over the label
/// `esession key check`. It lets a test or the vector checker compare K with a known value
/// while the session keeps no K (K is destroyed once the session keys are derived); it reveals
/// nothing about K or the keys.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyCheck([u8; 32]);

impl KeyCheck {
    /// The check value of `k`.
    #[must_use]
    pub fn of(k: &esession_crypto::SecretBytes) -> Self {
        let mut out = [0u8; 32];
        if let Ok(tag) = esession_crypto::HashAlg::Sha256.hmac(k.expose_secret(), &[b"esession key check"]) {
            out.copy_from_slice(&tag[..32]);
        }
        Self(out)
    }

    /// The 32 octets.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl core::fmt::Debug for KeyCheck {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "KeyCheck(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// Where the session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Stanzas flow both ways.
    Active,
    /// We sent the terminate form: we only receive, waiting for the acknowledgement.
    Terminating,
    /// Over; every key is gone.
    Closed,
}

/// What [`Established::receive`] found in a stanza. `Debug` shows no content.
#[non_exhaustive]
pub enum Received {
    /// A decrypted application stanza: exactly what the peer protected (see
    /// [`esession_stanza::Session::decrypt`]).
    #[non_exhaustive]
    Stanza {
        /// The stanza with its decrypted content.
        stanza: Element,
        /// Children that came in clear beside `<c/>`, outside what XEP-0200 §5 leaves in
        /// clear: not covered by the MAC, dropped, named here (empty normally). Report them
        /// apart from the stanza, never as part of it.
        unprotected: Vec<String>,
        /// The children XEP-0200 §5 leaves in clear that the stanza keeps besides `<thread/>`
        /// (`<amp/>` in a message, `<error/>` in an error stanza), by name: they are part of
        /// the stanza but NOT covered by the MAC (anyone on the path may have changed them).
        clear: Vec<String>,
    },
    /// The peer terminated the session (§5). `ack` is the encrypted acknowledgement to send; the
    /// session is closed.
    Terminated {
        /// The acknowledgement to send (None when it was the peer's acknowledgement of ours, or
        /// an unauthenticated clear-text terminate).
        ack: Option<Element>,
        /// Whether the terminate was inside the encrypted, MAC-verified content (A14).
        verified: bool,
    },
}

impl core::fmt::Debug for Received {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Received::Stanza { stanza, unprotected, clear } => f
                .debug_struct("Stanza")
                .field("name", &stanza.name())
                .field("children", &stanza.children().count())
                .field("unprotected", unprotected)
                .field("clear", clear)
                .finish(),
            Received::Terminated { ack, verified } => {
                f.debug_struct("Terminated").field("ack", &ack.is_some()).field("verified", verified).finish()
            }
        }
    }
}

/// An established session and what the negotiation proved. Fields are read through accessors:
/// the keys are reachable only through the stanza operations.
pub struct Established {
    session: Session,
    peer: Jid,
    thread: String,
    sas: Option<Sas>,
    peer_key: Option<PublicKey>,
    retained_secret_used: bool,
    logging: Logging,
    disclosure: Disclosure,
    key_check: KeyCheck,
    #[cfg(feature = "hazmat")]
    k: esession_crypto::SecretBytes,
    terminating: bool,
}

impl core::fmt::Debug for Established {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Established")
            .field("peer", &self.peer)
            .field("thread", &self.thread)
            .field("sas", &self.sas)
            .field("retained_secret_used", &self.retained_secret_used)
            .field("phase", &self.phase())
            .finish_non_exhaustive()
    }
}

fn terminate_of(stanza: &Element) -> Option<Terminate> {
    stanza
        .children()
        .filter_map(|c| Wrapper::unwrap(c).ok())
        .find_map(|(_, x)| DataForm::parse(x).ok().and_then(|f| Terminate::parse(&f).ok()))
}

impl Established {
    /// The one constructor of a session: the peer's identity was verified (`proof`), the keys
    /// and counters come from the negotiation. Identity blocks consumed the counters; stanzas
    /// continue from there (A9).
    pub(crate) fn open(proof: Proof, o: Opening<'_>) -> crate::Result<Self> {
        let params = Params {
            profile: o.algs.profile,
            hash: o.algs.hash.clone(),
            cipher: o.algs.cipher.clone(),
            compress: o.settings.compress.clone(),
            stanzas: o.settings.stanzas.clone(),
            rekey_freq: o.settings.rekey_freq,
            group: o.settings.group,
            max_blocks: esession_stanza::DEFAULT_MAX_BLOCKS,
        };
        let dir = |k: &kdf::DirectionKeys, counter| -> crate::Result<DirectionKeys> {
            Ok(DirectionKeys {
                cipher_key: cipher_key(o.algs.profile, &o.algs.cipher, &k.kc)?,
                mac_key: k.km.duplicate(),
                counter,
            })
        };
        let (mine, theirs) = match o.side {
            Side::Initiator => (&o.keys.initiator, &o.keys.responder),
            Side::Responder => (&o.keys.responder, &o.keys.initiator),
        };
        let session = Session::new(
            params,
            dir(mine, o.send_counter)?,
            dir(theirs, o.recv_counter)?,
            o.own,
            o.peer_public,
        )?;
        Ok(Self {
            session,
            peer: o.peer,
            thread: o.thread,
            sas: o.sas,
            peer_key: proof.into_key(),
            retained_secret_used: o.retained_secret_used,
            logging: o.settings.logging.clone(),
            disclosure: o.settings.disclosure.clone(),
            key_check: o.key_check,
            #[cfg(feature = "hazmat")]
            k: o.k,
            terminating: false,
        })
    }

    /// The peer, as addressed (a full JID, or a bare one for an offline session sent to it).
    #[must_use]
    pub fn peer(&self) -> &Jid {
        &self.peer
    }

    /// The `<thread/>` of the session.
    #[must_use]
    pub fn thread(&self) -> &str {
        &self.thread
    }

    /// The SAS to compare out of band (4-message negotiations).
    #[must_use]
    pub fn sas(&self) -> Option<&Sas> {
        self.sas.as_ref()
    }

    /// The key the peer proved (none for `none` identities).
    #[must_use]
    pub fn peer_key(&self) -> Option<&PublicKey> {
        self.peer_key.as_ref()
    }

    /// Whether a retained secret from a previous session entered the keys.
    #[must_use]
    pub fn retained_secret_used(&self) -> bool {
        self.retained_secret_used
    }

    /// The negotiated `logging` (with `mustnot`, nothing of the session may be stored).
    #[must_use]
    pub fn logging(&self) -> &Logging {
        &self.logging
    }

    /// The negotiated `disclosure`.
    #[must_use]
    pub fn disclosure(&self) -> &Disclosure {
        &self.disclosure
    }

    /// The stanza layer's state, read only (parameters, counters, stored key sets).
    #[must_use]
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The check value of the K the session keys came from (4-message: K_final), for
    /// comparing K with a known value; the session keeps no K.
    #[must_use]
    pub fn key_check(&self) -> &KeyCheck {
        &self.key_check
    }

    /// The stanza layer's state, mutably: its raw operations bypass the termination rules of
    /// this type (feature `replay`, for known-answer checks).
    #[cfg(feature = "replay")]
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The final K the session keys came from (4-message: HASH(K | SRS | OSS)), for known-answer
    /// checks (hazmat).
    #[cfg(feature = "hazmat")]
    #[must_use]
    pub fn k(&self) -> &esession_crypto::SecretBytes {
        &self.k
    }

    /// The session's phase.
    #[must_use]
    pub fn phase(&self) -> Phase {
        if self.session.is_closed() {
            Phase::Closed
        } else if self.terminating {
            Phase::Terminating
        } else {
            Phase::Active
        }
    }

    /// Ends the session at once, without a terminate form (object encryption, a failure, an
    /// offline session ended by the peer's presence): every key is dropped.
    pub fn close(&mut self) {
        self.session.close();
    }

    /// Encrypts an application stanza for the peer.
    ///
    /// # Errors
    /// After we sent a terminate (only receiving is allowed) or when closed; as
    /// [`esession_stanza::Session::encrypt`].
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        stanza: &Element,
        opts: EncryptOptions,
        rng: &mut R,
    ) -> crate::Result<Element> {
        // X116-5-10: nothing is sent after a terminate or an acknowledgement.
        if self.phase() != Phase::Active {
            return Err(crate::Error::ApiMisuse("the session is being terminated"));
        }
        Ok(self.session.encrypt(stanza, opts, rng)?)
    }

    /// Encrypts `content` (a stanza whose children are the content) and moves the resulting
    /// `<c/>` into `carrier` (content piggybacked on a negotiation stanza, XEP-0116 §4.6.4,
    /// §4.7.4; an XEP-0187 offline start).
    ///
    /// # Errors
    /// As [`Established::encrypt`].
    pub(crate) fn attach<R: CryptoRng + ?Sized>(
        &mut self,
        carrier: &mut Element,
        content: &Element,
        rng: &mut R,
    ) -> crate::Result<()> {
        let wire = self.encrypt(content, EncryptOptions::default(), rng)?;
        if let Some(c) = wire.children().find(|c| c.is("c", esession_stanza::NS)) {
            carrier.append_child(c.clone());
        }
        Ok(())
    }

    /// Decrypts the `<c/>` that came with a negotiation stanza (or an offline start), if any:
    /// the content and the names of what came in clear beside it other than the negotiation
    /// form itself (dropped).
    ///
    /// # Errors
    /// As [`esession_stanza::Session::decrypt`] (the session is closed).
    pub(crate) fn open_attached(&mut self, stanza: &Element) -> crate::Result<Option<Attached>> {
        if stanza.children().all(|c| !c.is("c", esession_stanza::NS)) {
            return Ok(None);
        }
        let (clear, opened) = self.session.decrypt(stanza)?;
        let form = [
            format!("{{{}}}feature", esession_forms::esession::FEATURE_NEG_NS),
            format!("{{{}}}init", esession_forms::esession::INIT_NS),
        ];
        let unprotected = opened.unprotected.into_iter().filter(|n| !form.contains(n)).collect();
        Ok(Some((clear, unprotected, opened.clear)))
    }

    fn form_stanza(&self, t: Terminate) -> Element {
        let profile: Profile = self.session.params().profile;
        // No field of a terminate is required: the dialects' layouts of `<required/>` agree.
        let x = t.to_form(profile).to_element();
        // X155-7-02 X155-7-05: the terminate and the acknowledgement carry the session's
        // thread (the one of the request). X155-13-01: the message holds the form only, no
        // `<body/>`.
        let mut m = crate::wire::message(&self.peer, &self.thread, vec![Wrapper::Feature.wrap(x)]);
        // The terminate message has no type (I17); drop the attribute `message` may carry.
        m.attrs_mut().retain(|_, name, _| name.as_str() != "type");
        m
    }

    /// Terminates the session (§5): the encrypted terminate form, optionally publishing the old
    /// MAC keys that may be published. Afterwards we only receive, to verify the
    /// acknowledgement.
    ///
    /// # Errors
    /// When not active, or when encryption fails.
    pub fn terminate<R: CryptoRng + ?Sized>(
        &mut self,
        publish_old: bool,
        rng: &mut R,
    ) -> crate::Result<Element> {
        // X116-5-10: one terminate; nothing after it.
        if self.phase() != Phase::Active {
            return Err(crate::Error::ApiMisuse("the session is not active"));
        }
        // X116-5-03 X155-7-01: the terminate form (XEP-0155 §7) inside the encrypted content.
        let m = self.form_stanza(Terminate::Request);
        let wire = self.session.encrypt(&m, EncryptOptions { rekey: false, publish_old }, rng)?;
        // X116-5-10: from now on we only receive (`encrypt` refuses).
        self.terminating = true;
        // X116-5-05: every key not needed to verify the acknowledgement goes now (send keys,
        // unpublished old MAC keys, DH exponents); the receive keys go with the
        // acknowledgement, or with `close()` when none comes.
        self.session.stop_sending();
        Ok(wire)
    }

    /// Makes the session receive-only for good (XEP-0187 §4: Alice never sends in an offline
    /// session she accepted): the send keys go now (wiped), the receive keys and our DH
    /// exponents stay ([`esession_stanza::Session::receive_only`]). A terminate from the peer is
    /// then not acknowledged.
    pub fn receive_only(&mut self) {
        self.session.receive_only();
    }

    /// Receives a stanza of the session: decrypts it (any failure terminates the session, as
    /// XEP-0200 requires) and recognises a terminate or an acknowledgement inside it.
    ///
    /// # Errors
    /// The stanza layer's errors; [`esession_stanza::Error::NotEncrypted`] for clear stanzas
    /// other than a terminate.
    pub fn receive<R: CryptoRng + ?Sized>(
        &mut self,
        stanza: &Element,
        publish_old_in_ack: bool,
        rng: &mut R,
    ) -> crate::Result<Received> {
        if stanza.children().all(|c| !c.is("c", esession_stanza::NS)) {
            // A clear SSN terminate is accepted but it is not authenticated (A14).
            if terminate_of(stanza) == Some(Terminate::Request) {
                self.session.close();
                return Ok(Received::Terminated { ack: None, verified: false });
            }
            return Err(esession_stanza::Error::NotEncrypted.into());
        }
        // X116-5-06 X116-5-09: the MAC is verified before anything of the stanza is read (a
        // failure ends the session: no acknowledgement, no termination reported).
        let (clear, opened) = self.session.decrypt(stanza)?;
        match terminate_of(&clear) {
            Some(Terminate::Request) => {
                // X116-5-06: acknowledged at once, encrypted. X116-5-10: not when we sent our
                // own terminate already (crossing terminates): nothing follows it. A session
                // that only receives ([`Established::import_receiving`]: an offline session
                // Alice accepted, X187-5-02) has nothing to acknowledge with.
                let ack = if self.terminating || !self.session.is_sending() {
                    None
                } else {
                    let m = self.form_stanza(Terminate::Ack);
                    Some(self.session.encrypt(
                        &m,
                        EncryptOptions { rekey: false, publish_old: publish_old_in_ack },
                        rng,
                    )?)
                };
                // X116-5-08 X155-7-03: then every key is destroyed; the session is over.
                self.session.close();
                Ok(Received::Terminated { ack, verified: true })
            }
            Some(Terminate::Ack) => {
                // X116-5-05: the terminator destroys the last keys (the receive keys, kept only
                // to verify this acknowledgement) once it has verified.
                self.session.close();
                Ok(Received::Terminated { ack: None, verified: true })
            }
            None => {
                Ok(Received::Stanza { stanza: clear, unprotected: opened.unprotected, clear: opened.clear })
            }
        }
    }
}

/// Version of the octets [`Established::export_receiving`] writes.
const RECEIVING_V1: u8 = 1;

/// A kept state that does not read back.
fn bad(what: &'static str) -> crate::Error {
    crate::Error::Stanza(esession_stanza::Error::Snapshot(what))
}

impl Established {
    /// The receiving half of the session as octets to keep: **secret** (see
    /// [`esession_stanza::Session::export_receiving`]), to be sealed by the caller before they
    /// leave memory. With the peer, the thread, the key the peer proved, and the negotiated
    /// `logging` and `disclosure`. For a session in which we only receive from now on: an
    /// XEP-0187 offline session Alice accepted (she never sends in it), kept so that a restart
    /// decrypts its later stanzas ([`Established::import_receiving`]).
    ///
    /// Only from a session made receive-only ([`Established::receive_only`]); each export
    /// supersedes the ones before (an older one imported accepts again what was taken since).
    ///
    /// # Errors
    /// A closed session; one that still sends; a state that is not kept (a compression
    /// context).
    pub fn export_receiving(&self) -> crate::Result<esession_crypto::SecretBytes> {
        let session = self.session.export_receiving()?;
        let key = match &self.peer_key {
            Some(k) => Some(k.to_public_key_pem()?),
            None => None,
        };
        let texts =
            [self.peer.as_str(), self.thread.as_str(), self.logging.as_str(), self.disclosure.as_str()];
        let len = 1
            + 4
            + session.len()
            + texts.iter().map(|t| 4 + t.len()).sum::<usize>()
            + 1
            + key.as_ref().map_or(0, |k| 4 + k.len())
            + 32
            + 2;
        // Sized once: no reallocation leaves a copy of the keys behind.
        let mut out = Vec::with_capacity(len);
        out.push(RECEIVING_V1);
        put_field(&mut out, session.expose_secret());
        for t in texts {
            put_field(&mut out, t.as_bytes());
        }
        match &key {
            Some(k) => {
                out.push(1);
                put_field(&mut out, k.as_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(self.key_check.as_bytes());
        out.push(u8::from(self.retained_secret_used));
        out.push(u8::from(self.terminating));
        debug_assert_eq!(out.len(), len, "the kept state was sized wrong");
        Ok(esession_crypto::SecretBytes::new(out))
    }

    /// The session [`Established::export_receiving`] wrote `kept` from, receiving as it did
    /// then and never sending (its SAS is not kept: none is shown again). In `hazmat` builds
    /// its `Established::k` is empty: K was destroyed long before.
    ///
    /// # Errors
    /// [`crate::Error::Stanza`] with [`esession_stanza::Error::Snapshot`] for octets of another
    /// version, truncated or malformed; the primitives' errors for what this build does not
    /// implement.
    pub fn import_receiving(kept: &[u8]) -> crate::Result<Self> {
        let mut r = Fields::new(kept);
        if r.take(1)? != [RECEIVING_V1] {
            return Err(bad("an unknown version"));
        }
        let session = Session::import_receiving(r.field()?)?;
        let peer = Jid::new(r.text()?).map_err(|_| bad("a JID that does not parse"))?;
        let thread = r.text()?.to_owned();
        let logging: Logging = r.text()?.parse().unwrap_or_else(|e| match e {});
        let disclosure: Disclosure = r.text()?.parse().unwrap_or_else(|e| match e {});
        let peer_key = match r.take(1)? {
            [0] => None,
            [1] => Some(PublicKey::from_public_key_pem(r.text()?)?),
            _ => return Err(bad("a bad key flag")),
        };
        let mut check = [0u8; 32];
        check.copy_from_slice(r.take(32)?);
        let flags = r.take(2)?;
        if !r.is_empty() || flags.iter().any(|f| *f > 1) {
            return Err(bad("trailing octets or bad flags"));
        }
        Ok(Self {
            session,
            peer,
            thread,
            sas: None,
            peer_key,
            retained_secret_used: flags[0] == 1,
            logging,
            disclosure,
            key_check: KeyCheck(check),
            #[cfg(feature = "hazmat")]
            k: esession_crypto::SecretBytes::new(Vec::new()),
            terminating: flags[1] == 1,
        })
    }
}
