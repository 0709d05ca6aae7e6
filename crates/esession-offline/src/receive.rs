//! Alice on her return (XEP-0187 §3.4): check an offline start in the order of I27, record its
//! d and N_B, decrypt. Every failure is silent (no error stanza); Alice never sends inside an
//! offline session and sends no termination answer (§4, §5).

use crate::publish::Secrets;
use crate::replay::ReplayStore;
use crate::{Check, Error, Result};
use esession_crypto::Profile;
use esession_negotiate::published::{self, Refused, Start};
use esession_negotiate::{Established, TrustStore};
use minidom::Element;

/// The replay keys of a start: `d:` and `NB:` of it, scoped by the options' N_A.
#[must_use]
pub fn replay_keys(na: &[u8], d: &[u8], nb: &[u8]) -> Vec<Vec<u8>> {
    let key = |tag: &[u8], v: &[u8]| [na, tag, v].concat();
    vec![key(b"d:", d), key(b"NB:", nb)]
}

/// What an accepted start carried: its decrypted content, and the names of children that came
/// in clear beside the start and are not covered by its MAC (dropped, see
/// [`esession_stanza::Session::decrypt`]).
pub struct Content {
    /// The stanza with its decrypted content.
    pub stanza: Element,
    /// Unprotected children, dropped.
    pub unprotected: Vec<String>,
    /// Children kept in clear besides `<thread/>` (`<amp/>`), not covered by the MAC.
    pub clear: Vec<String>,
}

impl core::fmt::Debug for Content {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Content")
            .field("children", &self.stanza.children().count())
            .field("unprotected", &self.unprotected)
            .field("clear", &self.clear)
            .finish()
    }
}

/// Accepts one offline start (§3.4) in the order of I27: expired, which N_A (`nonce`), which
/// group, replay, then the negotiation's checks (options, d, K, M_B, trust, signature; see
/// [`published::accept`]), then d and N_B are recorded and the content decrypted. Returns
/// Alice's side of the session (receive only) and the decrypted content, if any.
///
/// # Errors
/// [`Error::Refused`] with the failed check: the stanza is dropped without answer.
pub fn accept(
    secrets: &Secrets,
    stanza: &Element,
    now: chrono::DateTime<chrono::Utc>,
    profile: Profile,
    trust: &dyn TrustStore,
    replay: &mut dyn ReplayStore,
) -> Result<(Established, Option<Content>)> {
    // X187-3.4-02: after the expiry, nothing is decrypted.
    if now > secrets.expires {
        return Err(Error::Refused(Check::OptionsExpired));
    }
    let start = Start::read(stanza, profile).map_err(|_| Error::Refused(Check::Form))?;
    if start.nonce() != secrets.na {
        return Err(Error::Refused(Check::UnknownNonce));
    }
    // X187-3.4-03: the x that goes with the nonce and the group.
    let Some((_, pair)) = secrets.pairs.iter().find(|(g, _)| *g == start.group()) else {
        return Err(Error::Refused(Check::UnknownGroup));
    };
    let keys = replay_keys(&secrets.na, start.d(), start.nb());
    // X187-3.4-03 X187-6.1-02: neither d nor N_B seen before (each on its own: a start that
    // reuses only one of them is a replay too), checked before any key is computed.
    if keys.iter().any(|k| replay.seen(k, now)) {
        return Err(Error::Refused(Check::Replay));
    }
    // X187-3.4-04: Alice continues as an online initiator receiving the response;
    // X187-3.4-06: with pubkey `key` assumed (`published::accept`).
    let accepted = published::accept(start, &secrets.offers, &secrets.na, pair, profile, trust).map_err(
        |r| match r {
            Refused::Check(c) => Error::Refused(Check::from_negotiate(c)),
            _ => Error::Refused(Check::Content),
        },
    )?;
    // Only a verified start enters the replay store, so a forged copy cannot block the genuine
    // one (I27).
    // X187-6.1-02 X187-6.1-03: d and N_B remembered durably until the options expire (not
    // until now: the everyone set stays valid across returns); a second use is refused.
    replay.record(&keys, secrets.expires)?;
    let init = format!("{{{}}}init", esession_forms::esession::INIT_NS);
    let content = accepted.content.map(|(stanza, unprotected, clear)| Content {
        stanza,
        unprotected: unprotected.into_iter().filter(|n| *n != init).collect(),
        clear,
    });
    Ok((accepted.session, content))
}
