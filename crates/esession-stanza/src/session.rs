//! One established encrypted session's stanza protection (XEP-0200 §6-§10): per-direction keys
//! and counters, MACs, the re-key exchange with its stored key sets, `<new/>` counting,
//! publication of old MAC keys, and termination on any failure.

use crate::compress::{Compressor, Decompressor};
use crate::content;
use crate::element::Encrypted;
use crate::error::{Error, Result, TerminationCause};
use esession_crypto::kdf::{RekeyKeys, cipher_key};
use esession_crypto::{
    CryptAlg, CtrCipher, DhKeyPair, HashAlg, ModpGroup, Profile, SecretBytes, mpi, secret,
};
use esession_forms::names::{Compress, StanzaType};
use esession_forms::xml::{self, Limits};
use minidom::Element;
use rand_core::CryptoRng;

/// An element's name for a report: `name` in the stanza's namespace, `{namespace}name` in
/// another, each part cut to 64 octets.
fn clark(e: &Element, stanza_ns: &str) -> String {
    let cut = |s: &str| -> String {
        let mut end = s.len().min(64);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_owned()
    };
    let ns = e.ns();
    if ns == stanza_ns { cut(e.name()) } else { format!("{{{}}}{}", cut(&ns), cut(e.name())) }
}

/// The default block budget between key exchanges: re-key well before 2^32 blocks
/// (XEP-0200 §11.4, RFC 4344).
pub const DEFAULT_MAX_BLOCKS: u64 = (1 << 32) - (1 << 20);

/// The negotiated parameters the stanza layer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Wire profile.
    pub profile: Profile,
    /// HASH.
    pub hash: HashAlg,
    /// CIPHER.
    pub cipher: CryptAlg,
    /// COMPRESS.
    pub compress: Compress,
    /// The stanza types encrypted in this session.
    pub stanzas: Vec<StanzaType>,
    /// The minimum number of stanzas between key exchanges.
    pub rekey_freq: u32,
    /// The MODP group of the negotiation (re-keys use it too).
    pub group: ModpGroup,
    /// Blocks allowed between key exchanges before a re-key is forced.
    pub max_blocks: u64,
}

/// One direction's starting keys: the cipher key (already truncated per profile), the MAC key
/// and the counter.
pub struct DirectionKeys {
    /// The octets the block cipher is keyed with.
    pub cipher_key: SecretBytes,
    /// KM.
    pub mac_key: SecretBytes,
    /// C.
    pub counter: u128,
}

impl core::fmt::Debug for DirectionKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "DirectionKeys(<redacted>, counter {:#x})", self.counter)
    }
}

// ---------------------------------------------------------------------------------------------
// Stateless primitives (also what the vector checker replays, through `crate::hazmat`)

/// The counter octets a sender puts in its MAC input: minimal octets (§6.1) in `Profile::Xep`;
/// in `Profile::Gajim` the 16-octet big-endian counter, which a Gajim receiver expects (its
/// sender uses minimal octets, equal above 2^120; below, Gajim refuses minimal ones).
pub(crate) fn sender_counter(profile: Profile, counter: u128) -> Vec<u8> {
    match profile {
        Profile::Xep => mpi::encode_u128(counter),
        Profile::Gajim => counter.to_be_bytes().to_vec(),
    }
}

/// a_mac = HMAC(HASH, KM, m_content | C) with C as the octets given.
///
/// # Errors
/// An unsupported hash.
#[cfg_attr(not(feature = "hazmat"), allow(dead_code))]
pub(crate) fn mac(hash: &HashAlg, km: &[u8], m_content: &[u8], counter: &[u8]) -> Result<Vec<u8>> {
    Ok(hash.hmac(km, &[m_content, counter])?)
}

/// [`mac`] over a `<c/>`'s m_content, read in its parts, and the counter octets given.
fn mac_of(hash: &HashAlg, km: &[u8], c: &Encrypted, counter: &[u8]) -> Result<Vec<u8>> {
    let [a, b, d, e] = c.mac_input();
    Ok(hash.hmac(km, &[a, b, d, e, counter])?)
}

/// Verifies a received `<c/>`'s MAC in constant time. `Profile::Gajim` accepts the counter as
/// minimal octets (what a Gajim sender MACs) and as 16 octets (ARCHITECTURE.md "Wire
/// profiles").
///
/// # Errors
/// [`Error::Terminated`] with [`TerminationCause::Mac`].
pub(crate) fn verify(
    profile: Profile,
    hash: &HashAlg,
    km: &[u8],
    c: &Encrypted,
    counter: u128,
) -> Result<()> {
    let minimal = mac_of(hash, km, c, &mpi::encode_u128(counter))?;
    // X200-8-04: constant-time MAC check; a mismatch terminates.
    let mut ok = secret::ct_eq(&minimal, &c.mac);
    if profile == Profile::Gajim {
        let padded = mac_of(hash, km, c, &counter.to_be_bytes())?;
        ok |= secret::ct_eq(&padded, &c.mac);
    }
    if ok { Ok(()) } else { Err(Error::Terminated(TerminationCause::Mac)) }
}

/// Builds a `<c/>` (XEP-0200 §6): encrypts the (compressed) content at `counter`, adds `<key/>`,
/// `<new/>`, `<old/>`s and the MAC (with `profile`'s sender counter octets). Returns the
/// element and the counter after it. Empty content advances the counter by 1.
#[allow(clippy::too_many_arguments)]
pub(crate) fn seal_owned(
    profile: Profile,
    hash: &HashAlg,
    cipher: &CtrCipher,
    km: &[u8],
    counter: u128,
    m: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
    new: Option<u32>,
    old: Vec<Vec<u8>>,
) -> Result<(Encrypted, u128)> {
    let (data, after) = match m {
        Some(mut d) => {
            let after = cipher.encrypt(counter, &mut d);
            (Some(d), after)
        }
        // X200-6-02 X200-6-04: no content (or cipher none): the counter still advances by 1.
        None => (None, counter.wrapping_add(1)),
    };
    let mut e = Encrypted::new(data, key, new, old);
    let a_mac = mac_of(hash, km, &e, &sender_counter(profile, counter))?;
    e.set_mac(a_mac);
    Ok((e, after))
}

/// Decrypts `data` in place at `counter`, with the counter after it; no data advances the
/// counter by 1.
pub(crate) fn decrypt_owned(
    cipher: &CtrCipher,
    counter: u128,
    data: Option<Vec<u8>>,
) -> (Option<Vec<u8>>, u128) {
    match data {
        Some(mut d) => {
            let after = cipher.decrypt(counter, &mut d);
            (Some(d), after)
        }
        None => (None, counter.wrapping_add(1)),
    }
}

// ---------------------------------------------------------------------------------------------
// The stateful session

/// A stored receive set {KC, KM, x}: the peer's keys and our exponent they go with (§9.2).
struct RecvSet {
    cipher: CtrCipher,
    km: SecretBytes,
    own: DhKeyPair,
}

struct SendState {
    cipher: CtrCipher,
    km: SecretBytes,
    counter: u128,
}

/// What [`Session::seal`] should add besides the content.
#[derive(Debug, Default)]
pub struct SealOptions {
    /// Start a re-key with this new key pair (its public value goes in `<key/>`).
    pub rekey: Option<DhKeyPair>,
    /// Publish the old MAC keys that may be published now (`<old/>`, §10).
    pub publish_old: bool,
}

/// What [`Session::encrypt`] should do besides encrypting.
#[derive(Debug, Default, Clone, Copy)]
pub struct EncryptOptions {
    /// Start a re-key exchange (refused before `rekey_freq` stanzas).
    pub rekey: bool,
    /// Publish the old MAC keys that may be published now.
    pub publish_old: bool,
}

/// What a received `<c/>` carried, besides its content. `Debug` shows sizes, never content.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Opened {
    /// The decrypted, decompressed content m (None for an empty stanza).
    pub m: Option<Vec<u8>>,
    /// The peer started a re-key (`<key/>`).
    pub rekeyed: bool,
    /// How many `<old/>` MAC keys the peer published (ignored, §10).
    pub old_published: usize,
    /// The children that came in clear beside `<c/>` and are not among those XEP-0200 §5
    /// leaves in clear (`<thread/>`, `<amp/>`, `<error/>`): the MAC does not cover them, so
    /// they were dropped and are never part of what [`Session::decrypt`] returns. Their names
    /// only (Clark notation, `{namespace}name`, for another namespace than the stanza's), at
    /// most [`MAX_REPORTED`].
    pub unprotected: Vec<String>,
}

/// How many dropped clear children [`Opened::unprotected`] names at most.
pub const MAX_REPORTED: usize = 16;

impl core::fmt::Debug for Opened {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Opened")
            .field("m_len", &self.m.as_ref().map(Vec::len))
            .field("rekeyed", &self.rekeyed)
            .field("old_published", &self.old_published)
            .field("unprotected", &self.unprotected)
            .finish()
    }
}

/// An established session's stanza encryption state.
pub struct Session {
    params: Params,
    send: Option<SendState>,
    recv_counter: u128,
    recv_sets: Vec<RecvSet>,
    compressor: Compressor,
    decompressor: Decompressor,
    peer_public: Vec<u8>,
    keys_received: u32,
    since_key_exchange: u32,
    blocks_since_key_exchange: u64,
    pending_own_old: Vec<SecretBytes>,
    publishable: Vec<SecretBytes>,
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("cipher", &self.params.cipher)
            .field("closed", &self.send.is_none())
            .field("recv_sets", &self.recv_sets.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Starts a session with the keys and counters of a completed negotiation. `own` is our DH
    /// key pair of the negotiation (x or y, kept for re-keys), `peer_public` the peer's (d or e).
    ///
    /// # Errors
    /// Unsupported algorithms or key lengths; a peer value out of range.
    pub fn new(
        params: Params,
        send: DirectionKeys,
        recv: DirectionKeys,
        own: DhKeyPair,
        peer_public: Vec<u8>,
    ) -> Result<Self> {
        params.group.params()?.check_public(&peer_public)?;
        let send = SendState {
            cipher: CtrCipher::new(&params.cipher, params.profile, &send.cipher_key)?,
            km: send.mac_key,
            counter: send.counter,
        };
        let set = RecvSet {
            cipher: CtrCipher::new(&params.cipher, params.profile, &recv.cipher_key)?,
            km: recv.mac_key,
            own,
        };
        Ok(Self {
            compressor: Compressor::new(&params.compress)?,
            decompressor: Decompressor::new(&params.compress)?,
            params,
            send: Some(send),
            recv_counter: recv.counter,
            recv_sets: vec![set],
            peer_public,
            keys_received: 0,
            since_key_exchange: 0,
            blocks_since_key_exchange: 0,
            pending_own_old: Vec::new(),
            publishable: Vec::new(),
        })
    }

    /// The negotiated parameters.
    #[must_use]
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Whether the session has been terminated.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.send.is_none()
    }

    /// Our counter (the next `<c/>` we send uses it).
    #[must_use]
    pub fn send_counter(&self) -> Option<u128> {
        self.send.as_ref().map(|s| s.counter)
    }

    /// The peer's counter we expect next.
    #[must_use]
    pub fn recv_counter(&self) -> u128 {
        self.recv_counter
    }

    /// How many receive key sets are stored (more than one while our re-keys are in flight).
    #[must_use]
    pub fn stored_sets(&self) -> usize {
        self.recv_sets.len()
    }

    /// How many old MAC keys could be published now.
    #[must_use]
    pub fn publishable_old_keys(&self) -> usize {
        self.publishable.len()
    }

    /// Stanzas still to exchange before we may start a re-key (0: allowed now).
    #[must_use]
    pub fn rekey_wait(&self) -> u32 {
        self.params.rekey_freq.saturating_sub(self.since_key_exchange.saturating_add(1))
    }

    /// Whether the block budget requires a re-key with the next stanza.
    #[must_use]
    pub fn needs_rekey(&self, next_len: usize) -> bool {
        let next = esession_crypto::cipher::blocks(next_len) as u64 + 1;
        self.blocks_since_key_exchange.saturating_add(next) >= self.params.max_blocks
    }

    /// Whether a stanza of this element name is encrypted in this session.
    #[must_use]
    pub fn encrypts(&self, stanza_name: &str) -> bool {
        let t: StanzaType = stanza_name.parse().unwrap_or(StanzaType::Unknown(String::new()));
        !matches!(t, StanzaType::Unknown(_)) && self.params.stanzas.contains(&t)
    }

    /// Ends the session: every key is dropped (and so wiped); nothing more is sent or received.
    pub fn close(&mut self) {
        self.send = None;
        self.recv_sets.clear();
        self.pending_own_old.clear();
        self.publishable.clear();
    }

    fn terminate(&mut self, cause: TerminationCause) -> Error {
        self.close();
        Error::Terminated(cause)
    }

    /// Seals content m (the serialized encryptable children, or None for an empty stanza) into
    /// a `<c/>` (XEP-0200 §6), with the options' re-key and old keys (hazmat: m is not checked
    /// to be well-formed; [`Session::encrypt`] is the normal way).
    ///
    /// # Errors
    /// [`Error::SessionClosed`], [`Error::RekeyTooSoon`], [`Error::KeyExhausted`] when the block
    /// budget is spent and no re-key is allowed, or primitive failures.
    #[cfg(feature = "hazmat")]
    pub fn seal(&mut self, m: Option<&[u8]>, opts: SealOptions) -> Result<Encrypted> {
        self.seal_vec(m.map(<[u8]>::to_vec), opts)
    }

    /// [`Self::seal`], encrypting `m` in place.
    fn seal_vec(&mut self, m: Option<Vec<u8>>, opts: SealOptions) -> Result<Encrypted> {
        let Some(send) = self.send.as_ref() else { return Err(Error::SessionClosed) };
        if opts.rekey.is_some() && self.rekey_wait() > 0 {
            // X200-9.1-04: never re-key more often than the agreed rekey_freq.
            return Err(Error::RekeyTooSoon { remaining: self.rekey_wait() });
        }
        // X200-11.4-01: the block budget forces a re-key before 2^32 blocks.
        if opts.rekey.is_none() && self.needs_rekey(m.as_ref().map_or(0, Vec::len)) {
            return Err(Error::KeyExhausted);
        }
        let compressed = match m {
            Some(m) => Some(self.compressor.compress(m)?),
            None => None,
        };
        let new = (self.keys_received > 0).then_some(self.keys_received);
        let old: Vec<Vec<u8>> = if opts.publish_old {
            self.publishable.iter().map(|k| k.expose_secret().to_vec()).collect()
        } else {
            Vec::new()
        };
        let key = opts.rekey.as_ref().map(|p| p.public().to_vec());
        let counter = send.counter;
        let (sealed, after) = seal_owned(
            self.params.profile,
            &self.params.hash,
            &send.cipher,
            send.km.expose_secret(),
            counter,
            compressed,
            key,
            new,
            old,
        )?;
        // Committed: update the state.
        if opts.publish_old {
            self.publishable.clear();
        }
        self.keys_received = 0;
        self.blocks_since_key_exchange += after.wrapping_sub(counter) as u64;
        self.since_key_exchange = self.since_key_exchange.saturating_add(1);
        if let Some(s) = self.send.as_mut() {
            s.counter = after;
        }
        if let Some(pair) = opts.rekey {
            self.start_rekey(pair)?;
        }
        Ok(sealed)
    }

    /// Our re-key (§9.2): K = d^x (not hashed, A18); our new send keys; a new receive set
    /// {KC_peer, KM_peer, x}. Our old MAC key waits for the peer's confirmation before it may be
    /// published (§10).
    // X200-9.2-01 X200-9.2-02 X200-9.2-07 X200-9.2-08: new keys from K (then destroyed); old keys for this stanza, new ones after.
    fn start_rekey(&mut self, pair: DhKeyPair) -> Result<()> {
        let k = pair.agree_reusable(&self.peer_public)?.into_rekey_secret();
        let keys = RekeyKeys::derive(&self.params.hash, &k)?;
        let p = self.params.profile;
        let send_cipher =
            CtrCipher::new(&self.params.cipher, p, &cipher_key(p, &self.params.cipher, &keys.kc_initiator)?)?;
        let recv_cipher =
            CtrCipher::new(&self.params.cipher, p, &cipher_key(p, &self.params.cipher, &keys.kc_acceptor)?)?;
        if let Some(s) = self.send.as_mut() {
            let old_km = core::mem::replace(&mut s.km, keys.km_initiator);
            s.cipher = send_cipher;
            self.pending_own_old.push(old_km);
        }
        self.recv_sets.push(RecvSet { cipher: recv_cipher, km: keys.km_acceptor, own: pair });
        self.since_key_exchange = 0;
        self.blocks_since_key_exchange = 0;
        Ok(())
    }

    /// Verifies and decrypts a received `<c/>` (XEP-0200 §8), processing `<new/>` and `<key/>`
    /// (hazmat: the content is not parsed; [`Session::decrypt`] is the normal way). Any failure
    /// terminates the session.
    ///
    /// # Errors
    /// [`Error::SessionClosed`] or [`Error::Terminated`].
    #[cfg(feature = "hazmat")]
    pub fn open(&mut self, c: &Encrypted) -> Result<Opened> {
        self.open_with(c, c.data.clone())
    }

    /// [`Self::open`] with `data`, the ciphertext of `c.data` owned, decrypted in place.
    fn open_with(&mut self, c: &Encrypted, data: Option<Vec<u8>>) -> Result<Opened> {
        if self.send.is_none() {
            return Err(Error::SessionClosed);
        }
        // Step 1: <new/> selects the stored set the sender used.
        let idx = c.new.map_or(0, |n| n as usize);
        if idx >= self.recv_sets.len() {
            return Err(self.terminate(TerminationCause::New));
        }
        // Steps 2-3: the MAC, before anything else is trusted.
        let counter = self.recv_counter;
        let km = self.recv_sets[idx].km.expose_secret().to_vec();
        let verified = verify(self.params.profile, &self.params.hash, &km, c, counter);
        drop(SecretBytes::new(km));
        if let Err(e) = verified {
            return Err(match e {
                Error::Terminated(cause) => self.terminate(cause),
                other => {
                    self.close();
                    other
                }
            });
        }
        // The sender had our newer key(s): the older sets go (their MAC keys may be published),
        // and so does our own pre-re-key MAC key (§9.3, §10, I20).
        if idx > 0 {
            for dropped in self.recv_sets.drain(..idx) {
                self.publishable.push(dropped.km);
            }
            self.publishable.append(&mut self.pending_own_old);
        }
        // Step 4-5: decrypt and decompress.
        let (m, after) = decrypt_owned(&self.recv_sets[0].cipher, counter, data);
        self.recv_counter = after;
        self.blocks_since_key_exchange += after.wrapping_sub(counter) as u64;
        let m = match m {
            Some(d) => match self.decompressor.decompress(d) {
                Ok(m) => Some(m),
                Err(Error::Terminated(cause)) => return Err(self.terminate(cause)),
                Err(e) => return Err(e),
            },
            None => None,
        };
        self.since_key_exchange = self.since_key_exchange.saturating_add(1);
        let rekeyed = match &c.key {
            Some(e) => {
                self.accept_rekey(e)?;
                true
            }
            None => false,
        };
        Ok(Opened { m, rekeyed, old_published: c.old.len(), unprotected: Vec::new() })
    }

    /// The peer's re-key (§9.3): 1 < e < p - 1 (A18), K = e^y with the y of our oldest set; the
    /// peer's keys are replaced in every set; ours only if we store exactly one set.
    // X200-9.3-01 X200-9.3-02 X200-9.3-03 X200-9.3-04: range check, K from the oldest y, replace the sets.
    fn accept_rekey(&mut self, e: &[u8]) -> Result<()> {
        let Some(oldest) = self.recv_sets.first() else { return Err(Error::SessionClosed) };
        let k = match oldest.own.agree_reusable(e) {
            Ok(z) => z.into_rekey_secret(),
            Err(_) => return Err(self.terminate(TerminationCause::RekeyRange)),
        };
        let keys = RekeyKeys::derive(&self.params.hash, &k)?;
        let p = self.params.profile;
        let alg = self.params.cipher.clone();
        let peer_key = cipher_key(p, &alg, &keys.kc_initiator)?;
        for set in &mut self.recv_sets {
            set.cipher = CtrCipher::new(&alg, p, &peer_key)?;
            let old = core::mem::replace(&mut set.km, keys.km_initiator.duplicate());
            self.publishable.push(old);
        }
        if self.recv_sets.len() == 1
            && let Some(s) = self.send.as_mut()
        {
            s.cipher = CtrCipher::new(&alg, p, &cipher_key(p, &alg, &keys.kc_acceptor)?)?;
            // The acceptor never publishes its replaced send key: stanzas sent with it may
            // still be in flight (I20).
            s.km = keys.km_acceptor;
        }
        self.peer_public = e.to_vec();
        self.keys_received = self.keys_received.saturating_add(1);
        self.since_key_exchange = 0;
        self.blocks_since_key_exchange = 0;
        Ok(())
    }

    /// Encrypts a stanza: its encryptable children become one `<c/>` placed after `<thread/>`.
    ///
    /// # Errors
    /// [`Error::NotNegotiated`] for a stanza type outside the negotiated `stanzas` (the caller
    /// must decide explicitly to send it in clear); as [`Session::seal`].
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        stanza: &Element,
        opts: EncryptOptions,
        rng: &mut R,
    ) -> Result<Element> {
        if !self.encrypts(stanza.name()) {
            return Err(Error::NotNegotiated(stanza.name().to_owned()));
        }
        if content::find_c(stanza)?.0.is_some() {
            return Err(Error::Malformed("the stanza already has a <c/>"));
        }
        let clear: Vec<Element> = stanza.children().filter(|c| content::stays_clear(c)).cloned().collect();
        let m = content::serialize_secret(stanza)?;
        let forced = self.needs_rekey(m.as_ref().map_or(0, Vec::len)) && self.rekey_wait() == 0;
        let rekey =
            if opts.rekey || forced { Some(DhKeyPair::generate(self.params.group, rng)?) } else { None };
        let sealed = self.seal_vec(m, SealOptions { rekey, publish_old: opts.publish_old })?;
        Ok(content::assemble(stanza, clear, vec![sealed.into_element()]))
    }

    /// Decrypts a stanza: verifies and decrypts its `<c/>` (and, in an error stanza, the one in
    /// `<error/>`), and returns the stanza as the peer protected it: its name, namespace and
    /// attributes, the children XEP-0200 §5 leaves in clear (`<thread/>`, `<amp/>`,
    /// `<error/>`), and the decrypted content in place of `<c/>`. Any other child that came in
    /// clear is not covered by the MAC: it is dropped, and named in [`Opened::unprotected`].
    /// Nothing is returned unless every check passed; any failure terminates the session.
    ///
    /// # Errors
    /// [`Error::NotEncrypted`] for a stanza without `<c/>` (the session is not affected);
    /// [`Error::Terminated`] for every verification failure.
    pub fn decrypt(&mut self, stanza: &Element) -> Result<(Element, Opened)> {
        if self.send.is_none() {
            return Err(Error::SessionClosed);
        }
        let (direct, in_error) = match content::find_c(stanza) {
            Ok(v) => v,
            Err(_) => return Err(self.terminate(TerminationCause::Mac)),
        };
        let Some(c) = direct else { return Err(Error::NotEncrypted) };
        // What stays in clear must be small: nothing from the peer is copied unbounded.
        let mut clear: Vec<Element> = Vec::new();
        let mut unprotected = Vec::new();
        let stanza_ns = stanza.ns();
        for child in stanza.children() {
            if child.is("c", crate::element::NS) {
                continue;
            }
            if content::stays_clear(child) && xml::measure(child, Limits::NEGOTIATION).is_ok() {
                clear.push(child.clone());
            } else if unprotected.len() < MAX_REPORTED {
                unprotected.push(clark(child, &stanza_ns));
            }
        }
        let (children, mut opened) = self.open_element(stanza, c)?;
        if let Some(ec) = in_error {
            let (error_children, _) = self.open_element(stanza, ec)?;
            for child in &mut clear {
                if child.name() == "error" {
                    let mut rebuilt = Element::bare(child.name(), child.ns());
                    for ((ns, name), value) in child.attrs().iter() {
                        rebuilt.attrs_mut().insert(ns.clone(), name.clone(), value.clone());
                    }
                    for gc in child.children().filter(|x| !x.is("c", crate::element::NS)) {
                        rebuilt.append_child(gc.clone());
                    }
                    for gc in &error_children {
                        rebuilt.append_child(gc.clone());
                    }
                    *child = rebuilt;
                }
            }
        }
        opened.unprotected = unprotected;
        Ok((content::assemble(stanza, clear, children), opened))
    }

    fn open_element(&mut self, stanza: &Element, c: &Element) -> Result<(Vec<Element>, Opened)> {
        let mut parsed = match Encrypted::parse(self.params.profile, c) {
            Ok(p) => p,
            Err(_) => return Err(self.terminate(TerminationCause::Mac)),
        };
        // The MAC covers m_content, not `data`: the ciphertext can be moved out first.
        let data = parsed.data.take();
        let opened = self.open_with(&parsed, data)?;
        let children = match &opened.m {
            Some(m) => match content::parse(&stanza.ns(), m) {
                Ok(c) => c,
                Err(_) => return Err(self.terminate(TerminationCause::Xml)),
            },
            None => Vec::new(),
        };
        Ok((children, opened))
    }
}
