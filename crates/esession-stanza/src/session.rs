//! One established encrypted session's stanza protection (XEP-0200 §6-§10): per-direction keys
//! and counters, MACs, the re-key exchange with its stored key sets, `<new/>` counting,
//! publication of old MAC keys, and termination on any failure.

use crate::compress::{Compressor, Decompressor};
use crate::content;
use crate::element::Encrypted;
use crate::error::{Error, Result, TerminationCause};
use crate::kept::{Fields, put_field};
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

/// Sorts the clear children of a received stanza (all but `<c/>`): those XEP-0200 §5 leaves in
/// clear and that make sense in this stanza are kept (one `<thread/>`; one `<amp/>` in a
/// `<message/>`; one `<error/>` in a stanza of type `error`), each small enough
/// ([`Limits::NEGOTIATION`]); every other one is dropped. Returns the kept elements, the names
/// of the dropped ones (at most [`MAX_REPORTED`]) and the names of the kept ones other than
/// `<thread/>`.
fn keep_clear(stanza: &Element) -> (Vec<Element>, Vec<String>, Vec<String>) {
    let stanza_ns = stanza.ns();
    let is_error = stanza.attr("type") == Some("error");
    let is_message = stanza.name() == "message";
    let (mut thread, mut amp, mut error) = (false, false, false);
    let mut clear = Vec::new();
    let mut dropped = Vec::new();
    let mut named = Vec::new();
    for child in stanza.children() {
        if child.is("c", crate::element::NS) {
            continue;
        }
        // X200-N14-01: a kept <thread/> is copied verbatim, never interpreted.
        let allowed = content::stays_clear(child)
            && match child.name() {
                "thread" => !core::mem::replace(&mut thread, true),
                "amp" => is_message && !core::mem::replace(&mut amp, true),
                "error" => is_error && !core::mem::replace(&mut error, true),
                _ => false,
            };
        // What stays in clear must be small: nothing from the peer is copied unbounded.
        if allowed && xml::measure(child, Limits::NEGOTIATION).is_ok() {
            if child.name() != "thread" && named.len() < MAX_REPORTED {
                named.push(clark(child, &stanza_ns));
            }
            clear.push(child.clone());
        } else if dropped.len() < MAX_REPORTED {
            dropped.push(clark(child, &stanza_ns));
        }
    }
    (clear, dropped, named)
}

/// The default block budget between key exchanges: re-key well before 2^32 blocks
/// (XEP-0200 §11.4, RFC 4344).
pub const DEFAULT_MAX_BLOCKS: u64 = (1 << 32) - (1 << 20);

/// The largest block budget a session accepts: XEP-0200 §11.4 forbids exchanging 2^32 blocks
/// after a key exchange. [`Session::new`] lowers a larger `Params::max_blocks` to this.
pub const MAX_BLOCKS_LIMIT: u64 = 1 << 32;

/// How many receive key sets a session stores at most: the current one and up to 7 of our
/// re-keys the peer has not answered yet. Beyond it a re-key is refused
/// ([`Error::RekeysUnanswered`]) until the peer's stanza under a newer key lets the older sets
/// go. XEP-0200 §9.2 lets a sender drop the old sets after "a reasonable time" (60 seconds);
/// this layer has no clock, so it bounds their number instead and leaves silence to the
/// application (terminate the session).
pub const MAX_STORED_SETS: usize = 8;

/// How many old MAC keys wait for publication at most (§10, a MAY): when a new one comes, the
/// oldest is dropped (and wiped). A session that never publishes keeps no more than this.
pub const MAX_PUBLISHABLE: usize = 8;

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
        // X116-6.1-03: the counter in a_mac as minimal octets.
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
        // X200-6-02: no content (an empty re-key stanza): the counter still advances by 1.
        None => (None, counter.wrapping_add(1)),
    };
    // X200-6-01: encrypt (step 3, the caller compressed), Base64 and normalize (step 4), then
    // a_mac = HMAC(HASH, KM_A, m_content | C_A) with C_A before the encryption (step 5).
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
    /// The octets `cipher` is keyed with (kept for [`Session::export_receiving`]).
    kc: SecretBytes,
    km: SecretBytes,
    /// Our exponent for the peer's re-keys; gone once we stopped sending (no re-key is taken
    /// then).
    own: Option<DhKeyPair>,
    /// Our send MAC key that the re-key creating this set replaced (none for the first set):
    /// the last stanza MACed with it is the one that carried this set's `<key/>`, so it may be
    /// published once the peer's `<new/>` shows it received that key (§10).
    retired_send_km: Option<SecretBytes>,
}

struct SendState {
    cipher: CtrCipher,
    km: SecretBytes,
    counter: u128,
}

/// What `Session::seal` (feature `hazmat`) or [`Session::encrypt`] should add besides the
/// content.
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
    /// leaves in clear (one `<thread/>`; one `<amp/>` in a message; one `<error/>` in a stanza
    /// of type `error`): the MAC does not cover them, so they were dropped and are never part
    /// of what [`Session::decrypt`] returns. Their names only (Clark notation,
    /// `{namespace}name`, for another namespace than the stanza's), at most [`MAX_REPORTED`].
    pub unprotected: Vec<String>,
    /// The children other than `<thread/>` that [`Session::decrypt`] kept although they came
    /// in clear (`<amp/>`, `<error/>`, which XEP-0200 §5 forbids encrypting): the MAC does not
    /// cover them, so the application must treat their content as unauthenticated (a relay
    /// can write anything there). Names as in [`Opened::unprotected`], in document order.
    pub clear: Vec<String>,
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
            .field("clear", &self.clear)
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
    publishable: Vec<SecretBytes>,
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("cipher", &self.params.cipher)
            .field("closed", &self.recv_sets.is_empty())
            .field("sending", &self.send.is_some())
            .field("recv_sets", &self.recv_sets.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Starts a session with the keys and counters of a completed negotiation. `own` is our DH
    /// key pair of the negotiation (x or y, kept for re-keys), `peer_public` the peer's (d or e).
    /// A `max_blocks` above [`MAX_BLOCKS_LIMIT`] is lowered to it (see [`Session::params`]).
    ///
    /// # Errors
    /// Unsupported algorithms or key lengths; a peer value out of range.
    pub fn new(
        mut params: Params,
        send: DirectionKeys,
        recv: DirectionKeys,
        own: DhKeyPair,
        peer_public: Vec<u8>,
    ) -> Result<Self> {
        params.group.params()?.check_public(&peer_public)?;
        // X200-11.4-01: never more than 2^32 blocks per key exchange, whatever the caller asks.
        params.max_blocks = params.max_blocks.min(MAX_BLOCKS_LIMIT);
        let send = SendState {
            cipher: CtrCipher::new(&params.cipher, params.profile, &send.cipher_key)?,
            km: send.mac_key,
            counter: send.counter,
        };
        let set = RecvSet {
            cipher: CtrCipher::new(&params.cipher, params.profile, &recv.cipher_key)?,
            kc: recv.cipher_key,
            km: recv.mac_key,
            own: Some(own),
            retired_send_km: None,
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
            publishable: Vec::new(),
        })
    }

    /// The negotiated parameters.
    #[must_use]
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Whether the session has been terminated (nothing is sent or received any more).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.recv_sets.is_empty()
    }

    /// Whether stanzas can still be sent (not after [`Session::stop_sending`] or
    /// [`Session::close`]).
    #[must_use]
    pub fn is_sending(&self) -> bool {
        self.send.is_some()
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

    /// Why a re-key may not start with the next stanza, if it may not.
    fn rekey_refused(&self) -> Option<Error> {
        if self.rekey_wait() > 0 {
            // X200-9.1-04 X116-4.3-04: never re-key more often than the agreed rekey_freq: at
            // least rekey_freq stanzas since the last key exchange (this one included).
            return Some(Error::RekeyTooSoon { remaining: self.rekey_wait() });
        }
        if self.recv_sets.len() >= MAX_STORED_SETS {
            // X200-9.1-02: the sets kept for unanswered re-keys are bounded.
            return Some(Error::RekeysUnanswered { stored: self.recv_sets.len() });
        }
        None
    }

    /// Queues an old MAC key for publication (§10), dropping (and so wiping) the oldest queued
    /// one when [`MAX_PUBLISHABLE`] are waiting.
    fn queue_publishable(&mut self, km: SecretBytes) {
        if self.publishable.iter().any(|k| k.ct_eq(km.expose_secret())) {
            return;
        }
        if self.publishable.len() >= MAX_PUBLISHABLE {
            // X200-9.1-02: old MAC keys are not kept without bound for a MAY.
            drop(self.publishable.remove(0));
        }
        self.publishable.push(km);
    }

    /// A peer MAC key that left a stored set: queued for publication only if no stored set
    /// holds it any more, otherwise dropped.
    fn retire_peer_key(&mut self, km: SecretBytes) {
        // X200-10-02: never publish a key that can still verify a stanza the peer may send: the
        // peer may MAC with the key of any stored set (the sets are all we may still select).
        if self.recv_sets.iter().any(|s| s.km.ct_eq(km.expose_secret())) {
            return;
        }
        self.queue_publishable(km);
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
    // X200-9.1-02: every key of the session goes at once (SecretBytes wipes on drop).
    pub fn close(&mut self) {
        self.send = None;
        self.recv_sets.clear();
        self.publishable.clear();
    }

    /// Makes the session receive-only for good: our send keys and counter and the old MAC keys
    /// not yet published are dropped (and wiped); the receive keys and our DH exponents stay, so
    /// that the peer's stanzas and re-keys are still taken. For a session in which we never send
    /// (an XEP-0187 offline session Alice accepted, §4); required before
    /// [`Session::export_receiving`].
    pub fn receive_only(&mut self) {
        self.send = None;
        self.publishable.clear();
        for set in &mut self.recv_sets {
            set.retired_send_km = None;
        }
    }

    /// Stops the sending half (after our terminate, XEP-0116 §5): our send keys and counter,
    /// the old MAC keys not yet published, our stored send keys and our DH exponents are
    /// dropped (and wiped); only the receive keys stay, to verify the peer's acknowledgement.
    /// Afterwards sealing fails with [`Error::SessionClosed`] and a received `<key/>` ends the
    /// session.
    pub fn stop_sending(&mut self) {
        self.send = None;
        self.publishable.clear();
        for set in &mut self.recv_sets {
            set.own = None;
            set.retired_send_km = None;
        }
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
    /// [`Error::SessionClosed`], [`Error::RekeyTooSoon`], [`Error::RekeysUnanswered`],
    /// [`Error::KeyExhausted`] when the block budget is spent and no re-key is allowed, or
    /// primitive failures.
    #[cfg(feature = "hazmat")]
    pub fn seal(&mut self, m: Option<&[u8]>, opts: SealOptions) -> Result<Encrypted> {
        self.seal_vec(m.map(<[u8]>::to_vec), opts)
    }

    /// [`Self::seal`], encrypting `m` in place.
    fn seal_vec(&mut self, m: Option<Vec<u8>>, opts: SealOptions) -> Result<Encrypted> {
        let Some(send) = self.send.as_ref() else { return Err(Error::SessionClosed) };
        if opts.rekey.is_some()
            && let Some(refused) = self.rekey_refused()
        {
            return Err(refused);
        }
        // X200-11.4-01: the block budget forces a re-key before 2^32 blocks.
        if opts.rekey.is_none() && self.needs_rekey(m.as_ref().map_or(0, Vec::len)) {
            return Err(Error::KeyExhausted);
        }
        let compressed = match m {
            Some(m) => Some(self.compressor.compress(m)?),
            None => None,
        };
        // X200-6-06: <new/> only when keys came since our last stanza, and how many.
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

    /// Our re-key (§9.2), after the stanza carrying `<key/>` was sealed with the old keys:
    /// K = d^x (not hashed, A18); our new send keys; a new receive set {KC_peer, KM_peer, x}
    /// beside the older ones. Our old MAC key waits in the new set for the peer's confirmation
    /// before it may be published (§10).
    // X200-9.2-01 X200-9.2-02: x, e, K and the four keys; K is dropped (wiped) on return.
    fn start_rekey(&mut self, pair: DhKeyPair) -> Result<()> {
        let k = pair.agree_reusable(&self.peer_public)?.into_rekey_secret();
        let keys = RekeyKeys::derive(&self.params.hash, &k)?;
        let p = self.params.profile;
        // X200-9.2-03: cipher_key takes the last k octets of the HMAC output.
        let send_cipher =
            CtrCipher::new(&self.params.cipher, p, &cipher_key(p, &self.params.cipher, &keys.kc_initiator)?)?;
        let recv_kc = cipher_key(p, &self.params.cipher, &keys.kc_acceptor)?;
        let recv_cipher = CtrCipher::new(&self.params.cipher, p, &recv_kc)?;
        let mut retired_send_km = None;
        if let Some(s) = self.send.as_mut() {
            // X200-9.2-08: the stanzas after this one use the new KC_A and KM_A.
            retired_send_km = Some(core::mem::replace(&mut s.km, keys.km_initiator));
            // X200-9.2-07: the old KC_A is destroyed now (replaced and dropped); the old KM_A
            // is kept for §10 in the new set.
            s.cipher = send_cipher;
        }
        // X200-9.2-09 X200-9.2-10 X200-9.2-11: the older sets {KC_B KM_B x} stay until a
        // stanza under a newer key arrives; one set per unanswered re-key.
        self.recv_sets.push(RecvSet {
            cipher: recv_cipher,
            kc: recv_kc,
            km: keys.km_acceptor,
            own: Some(pair),
            retired_send_km,
        });
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
        if self.is_closed() {
            return Err(Error::SessionClosed);
        }
        // Step 1: <new/> selects the stored set the sender used.
        // X200-8-02: the set is the one of the n-th of our unanswered <key/>s (0 without <new/>).
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
        // The sender had our newer key(s): the older sets go (§8 step 1), with the peer MAC keys
        // no stored set holds any more, and our own MAC keys retired by the re-keys the peer
        // has now received (§10).
        if idx > 0 {
            // X200-8-03: the sets older than the selected one are destroyed.
            let dropped: Vec<RecvSet> = self.recv_sets.drain(..idx).collect();
            let mut own = Vec::new();
            for set in dropped {
                own.extend(set.retired_send_km);
                self.retire_peer_key(set.km);
            }
            // X200-10-02: our old MAC key is published only after the peer confirmed (<new/>)
            // the stanza carrying the key that replaced it: only the keys retired by our
            // re-keys 1..=idx, never those of later re-keys whose stanzas may be in flight.
            own.extend(self.recv_sets[0].retired_send_km.take());
            for km in own {
                self.queue_publishable(km);
            }
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
        Ok(Opened { m, rekeyed, old_published: c.old.len(), unprotected: Vec::new(), clear: Vec::new() })
    }

    /// The peer's re-key (§9.3): 1 < e < p - 1 (A18), K = e^y with the y of our oldest set; the
    /// peer's keys are replaced in every set; ours only if we store exactly one set.
    fn accept_rekey(&mut self, e: &[u8]) -> Result<()> {
        // X200-9.3-02: K from the y of the oldest set (the one the stanza was verified with).
        let Some(oldest) = self.recv_sets.first() else { return Err(Error::SessionClosed) };
        // X200-9.3-01: agree_reusable checks 1 < e < p - 1 first (A18).
        // After we stopped sending (our terminate), a re-key is not taken: nothing would use it.
        let Some(own) = oldest.own.as_ref() else { return Err(self.terminate(TerminationCause::RekeyRange)) };
        let k = match own.agree_reusable(e) {
            Ok(z) => z.into_rekey_secret(),
            Err(_) => return Err(self.terminate(TerminationCause::RekeyRange)),
        };
        let keys = RekeyKeys::derive(&self.params.hash, &k)?;
        let p = self.params.profile;
        let alg = self.params.cipher.clone();
        let peer_key = cipher_key(p, &alg, &keys.kc_initiator)?;
        // X200-9.3-03: the peer's KC and KM are replaced in every stored set.
        let mut replaced = Vec::with_capacity(self.recv_sets.len());
        for set in &mut self.recv_sets {
            set.cipher = CtrCipher::new(&alg, p, &peer_key)?;
            set.kc = peer_key.duplicate();
            replaced.push(core::mem::replace(&mut set.km, keys.km_initiator.duplicate()));
        }
        // The oldest set's key is the one the peer MACed this stanza with, its last: it may be
        // published. The other sets' keys were for our unanswered re-keys; the peer, holding
        // sets of its own now, never switches to them: they are dropped.
        if !replaced.is_empty() {
            let last_used = replaced.swap_remove(0);
            drop(replaced);
            self.retire_peer_key(last_used);
        }
        // X200-9.3-04: our own keys only if we store exactly one set.
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
    /// must decide explicitly to send it in clear); [`Error::SessionClosed`],
    /// [`Error::RekeyTooSoon`], [`Error::RekeysUnanswered`], [`Error::KeyExhausted`] when the
    /// block budget is spent and no re-key is allowed, or primitive failures.
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        stanza: &Element,
        opts: EncryptOptions,
        rng: &mut R,
    ) -> Result<Element> {
        // X116-4.8.2-03: only the negotiated stanza kinds are encrypted.
        if !self.encrypts(stanza.name()) {
            return Err(Error::NotNegotiated(stanza.name().to_owned()));
        }
        // X200-5-03: the <c/> we add is the stanza's only one (find_c refuses any elsewhere).
        if content::find_c(stanza)?.0.is_some() {
            return Err(Error::Malformed("the stanza already has a <c/>"));
        }
        let clear: Vec<Element> = stanza.children().filter(|c| content::stays_clear(c)).cloned().collect();
        let m = content::serialize_secret(stanza)?;
        let forced = self.needs_rekey(m.as_ref().map_or(0, Vec::len)) && self.rekey_refused().is_none();
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
        if self.is_closed() {
            return Err(Error::SessionClosed);
        }
        let (direct, in_error) = match content::find_c(stanza) {
            Ok(v) => v,
            Err(_) => return Err(self.terminate(TerminationCause::Mac)),
        };
        let Some(c) = direct else { return Err(Error::NotEncrypted) };
        // X116-4.8.2-03: an encrypted stanza of a kind not negotiated is refused unread (its
        // wrapper is not covered by the MAC: a relay may have moved the <c/> into it).
        if !self.encrypts(stanza.name()) {
            let cut: String = stanza.name().chars().take(64).collect();
            return Err(Error::NotNegotiated(cut));
        }
        let (mut clear, unprotected, clear_names) = keep_clear(stanza);
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
        opened.clear = clear_names;
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
                // X200-8-07: content that is not well-formed XML terminates the session.
                Err(_) => return Err(self.terminate(TerminationCause::Xml)),
            },
            None => Vec::new(),
        };
        Ok((children, opened))
    }
}

// ---------------------------------------------------------------------------------------------
// Keeping the receiving half (an XEP-0187 offline session across a restart)

/// Version of the octets [`Session::export_receiving`] writes.
const RECEIVING_V1: u8 = 1;

/// How many stanza types and key sets a kept state may name (far above what a session holds).
const KEPT_MAX: u32 = 64;

impl Session {
    /// The receiving half of the session as octets to keep. They are **secret** (the receive
    /// keys and our DH exponents): the caller seals them before they leave memory. For a
    /// session in which we only receive from now on (an XEP-0187 offline session Alice
    /// accepted: she never sends in it), so that a restart can go on decrypting it:
    /// [`Session::import_receiving`] makes a session that receives exactly as this one would
    /// (counter, stored key sets, the peer's re-keys) and never sends. The send keys and the
    /// old MAC keys waiting for publication are not part of it.
    ///
    /// Each export supersedes the ones before: importing an older one gives a session whose
    /// counter is behind, which accepts again what was taken since; keep only the latest, sealed.
    ///
    /// # Errors
    /// [`Error::SessionClosed`] for a closed session; [`Error::Snapshot`] for a session that
    /// still sends (see [`Session::receive_only`]) or whose state is not kept: a compression
    /// context (`zlib`).
    pub fn export_receiving(&self) -> Result<SecretBytes> {
        if self.is_closed() {
            return Err(Error::SessionClosed);
        }
        // Only a session that will never send again: a copy of a two-way session's state would
        // hand out keys it still uses, and the exported counter goes stale at its next stanza.
        if self.is_sending() {
            return Err(Error::Snapshot(
                "a session that still sends is not exported (Session::receive_only)",
            ));
        }
        if self.params.compress != Compress::None {
            return Err(Error::Snapshot("a compression context is not kept"));
        }
        let p = &self.params;
        let names = [p.profile.as_str().to_owned(), p.hash.to_string(), p.cipher.to_string()];
        let stanzas: Vec<String> =
            p.stanzas.iter().take(KEPT_MAX as usize).map(ToString::to_string).collect();
        let owns: Vec<Option<SecretBytes>> =
            self.recv_sets.iter().map(|s| s.own.as_ref().map(DhKeyPair::export_secret)).collect();
        // Sized exactly once, so that no reallocation leaves a copy of a key behind (the
        // buffer is wiped when the returned SecretBytes drops).
        let len = 1
            + names.iter().chain(&stanzas).map(|n| 4 + n.len()).sum::<usize>()
            + 4
            + 4
            + 4
            + 8
            + 16
            + 4
            + self.peer_public.len()
            + 4
            + 4
            + 8
            + 4
            + self
                .recv_sets
                .iter()
                .zip(&owns)
                .map(|(s, o)| 8 + s.kc.len() + s.km.len() + 1 + o.as_ref().map_or(0, |o| 4 + o.len()))
                .sum::<usize>();
        let mut out = Vec::with_capacity(len);
        out.push(RECEIVING_V1);
        for n in &names {
            put_field(&mut out, n.as_bytes());
        }
        out.extend_from_slice(&u32::try_from(stanzas.len()).unwrap_or(0).to_be_bytes());
        for t in &stanzas {
            put_field(&mut out, t.as_bytes());
        }
        out.extend_from_slice(&p.rekey_freq.to_be_bytes());
        out.extend_from_slice(&p.group.number().to_be_bytes());
        out.extend_from_slice(&p.max_blocks.to_be_bytes());
        out.extend_from_slice(&self.recv_counter.to_be_bytes());
        put_field(&mut out, &self.peer_public);
        out.extend_from_slice(&self.keys_received.to_be_bytes());
        out.extend_from_slice(&self.since_key_exchange.to_be_bytes());
        out.extend_from_slice(&self.blocks_since_key_exchange.to_be_bytes());
        out.extend_from_slice(&u32::try_from(self.recv_sets.len()).unwrap_or(0).to_be_bytes());
        for (set, own) in self.recv_sets.iter().zip(&owns) {
            put_field(&mut out, set.kc.expose_secret());
            put_field(&mut out, set.km.expose_secret());
            match own {
                Some(x) => {
                    out.push(1);
                    put_field(&mut out, x.expose_secret());
                }
                None => out.push(0),
            }
        }
        debug_assert_eq!(out.len(), len, "the kept state was sized wrong");
        Ok(SecretBytes::new(out))
    }

    /// A session that receives as the one [`Session::export_receiving`] wrote `kept` from did
    /// when it was written, and never sends ([`Session::is_sending`] is false).
    ///
    /// # Errors
    /// [`Error::Snapshot`] for octets of another version, truncated or malformed; the
    /// primitives' errors for algorithms this build does not implement.
    pub fn import_receiving(kept: &[u8]) -> Result<Self> {
        let mut r = Fields::new(kept);
        if r.take(1)? != [RECEIVING_V1] {
            return Err(Error::Snapshot("an unknown version"));
        }
        let profile: Profile = r.text()?.parse().map_err(|_| Error::Snapshot("an unknown profile"))?;
        let hash: HashAlg = r.text()?.parse().unwrap_or_else(|e| match e {});
        let cipher: CryptAlg = r.text()?.parse().unwrap_or_else(|e| match e {});
        let n = r.u32()?;
        if n > KEPT_MAX {
            return Err(Error::Snapshot("too many stanza types"));
        }
        let mut stanzas = Vec::new();
        for _ in 0..n {
            stanzas.push(r.text()?.parse::<StanzaType>().unwrap_or_else(|e| match e {}));
        }
        let rekey_freq = r.u32()?;
        let group = ModpGroup::from_number(r.u32()?);
        let max_blocks = u64::from_be_bytes(r.array()?).min(MAX_BLOCKS_LIMIT);
        let recv_counter = u128::from_be_bytes(r.array()?);
        let peer_public = r.field()?.to_vec();
        group.params()?.check_public(&peer_public)?;
        let keys_received = r.u32()?;
        let since_key_exchange = r.u32()?;
        let blocks_since_key_exchange = u64::from_be_bytes(r.array()?);
        let n = r.u32()?;
        if n == 0 || n > KEPT_MAX {
            return Err(Error::Snapshot("no key set, or too many"));
        }
        let mut recv_sets = Vec::new();
        for _ in 0..n {
            let kc = SecretBytes::from_slice(r.field()?);
            let km = SecretBytes::from_slice(r.field()?);
            let own = match r.take(1)? {
                [0] => None,
                [1] => Some(DhKeyPair::from_exponent(group, r.field()?)?),
                _ => return Err(Error::Snapshot("a bad key set")),
            };
            recv_sets.push(RecvSet {
                cipher: CtrCipher::new(&cipher, profile, &kc)?,
                kc,
                km,
                own,
                retired_send_km: None,
            });
        }
        if !r.is_empty() {
            return Err(Error::Snapshot("trailing octets"));
        }
        let params = Params {
            profile,
            hash,
            cipher,
            compress: Compress::None,
            stanzas,
            rekey_freq,
            group,
            max_blocks,
        };
        Ok(Self {
            compressor: Compressor::new(&params.compress)?,
            decompressor: Decompressor::new(&params.compress)?,
            params,
            send: None,
            recv_counter,
            recv_sets,
            peer_public,
            keys_received,
            since_key_exchange,
            blocks_since_key_exchange,
            publishable: Vec::new(),
        })
    }
}
