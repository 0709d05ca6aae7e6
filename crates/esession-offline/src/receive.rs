//! Alice on her return (XEP-0187 §3.4): check an offline start in the order of I27, record its
//! d and N_B, decrypt. Every failure is silent (no error stanza); Alice never sends inside an
//! offline session and sends no termination answer (§4, §5).

use crate::publish::Secrets;
use crate::replay::ReplayStore;
use crate::{Check, Error, Result};
use esession_crypto::Profile;
use esession_crypto::kdf::SessionKeys;
use esession_forms::dataform::DataForm;
use esession_forms::esession::{Response, Wrapper};
use esession_forms::names::PubkeyMethod;
use esession_forms::normalize::form_content;
use esession_negotiate::sigma::{self, Algs, Who};
use esession_negotiate::{Established, Settings, TrustStore, open_session};
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
}

impl core::fmt::Debug for Content {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Content")
            .field("children", &self.stanza.children().count())
            .field("unprotected", &self.unprotected)
            .finish()
    }
}

/// Accepts one offline start. Returns Alice's side of the session (receive only) and the
/// decrypted content, if any.
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
    // I27: expired -> nonce -> group -> replay -> options -> d -> K -> M_B -> trust -> signature.
    if now > secrets.expires {
        return Err(Error::Refused(Check::OptionsExpired));
    }
    // Nothing larger than a negotiation message is read (STYLE.md 14).
    if esession_forms::xml::measure(stanza, esession_forms::xml::Limits::NEGOTIATION).is_err() {
        return Err(Error::Refused(Check::Form));
    }
    let wrapper = Wrapper::find(stanza).ok_or(Error::Refused(Check::Form))?;
    let (_, x) = Wrapper::unwrap(wrapper).map_err(|_| Error::Refused(Check::Form))?;
    let r = DataForm::parse(x).and_then(|f| Response::parse(&f)).map_err(|_| Error::Refused(Check::Form))?;
    if r.nonce != secrets.na {
        return Err(Error::Refused(Check::UnknownNonce));
    }
    let Some((group, pair)) = secrets.pairs.iter().find(|(g, _)| *g == r.modp) else {
        return Err(Error::Refused(Check::UnknownGroup));
    };
    let ts = u64::try_from(now.timestamp()).unwrap_or(0);
    let keys = replay_keys(&secrets.na, &r.d, &r.my_nonce);
    if keys.iter().any(|k| replay.seen(k, ts)) {
        return Err(Error::Refused(Check::Replay));
    }
    // The choices must be among the published options, and implemented here (I27 "options").
    if !secrets.offers.unacceptable(&r).is_empty()
        || r.sign_alg.is_none()
        || !r.hash_alg.is_supported()
        || !r.crypt_alg.is_supported()
        || !esession_stanza::compress::supported(&r.compress)
    {
        return Err(Error::Refused(Check::Options));
    }
    let (Some(id_b), Some(m_b)) = (r.identity.as_ref(), r.mac.as_ref()) else {
        return Err(Error::Refused(Check::Form));
    };
    let algs =
        Algs { profile, hash: r.hash_alg.clone(), cipher: r.crypt_alg.clone(), sign: r.sign_alg.clone() };
    let z = pair.agree_reusable(&r.d).map_err(|_| Error::Refused(Check::DRange))?;
    let k = z.session_key(&algs.hash)?;
    let session_keys = SessionKeys::derive(&algs.hash, &k)?;
    let ca = r.counter;
    let cb = ca ^ (1 << 127);
    let form_b = form_content(profile, x, &["identity", "mac"]).map_err(|_| Error::Refused(Check::Form))?;
    let bob = stanza.attr("from").unwrap_or("");
    // Since Alice sent no 'pubkey' field, she assumes 'key' (§3.4, A1).
    let rev = sigma::reveal(
        &algs,
        &session_keys.responder,
        cb,
        id_b,
        m_b,
        &PubkeyMethod::Key,
        &[&secrets.na, &r.my_nonce, &r.d],
        &[&form_b],
        trust,
        bob,
        Who::Bob,
    )
    .map_err(|c| Error::Refused(Check::from_negotiate(c)))?;
    // Only a verified start enters the replay store, so a forged copy cannot block the genuine
    // one (I27).
    let expires = u64::try_from(secrets.expires.timestamp()).unwrap_or(u64::MAX);
    // X187-6.1-01 X187-6.1-02: d and N_B remembered durably; a second use is refused.
    replay.record(&keys, expires)?;
    let settings = Settings::from_response(&r);
    let own = esession_crypto::DhKeyPair::from_exponent(*group, pair.export_secret().expose_secret())?;
    let session =
        open_session(&algs, &settings, &session_keys, true, ca, rev.counter_after, own, r.d.clone())
            .map_err(|_| Error::Refused(Check::Options))?;
    let thread = stanza.get_child("thread", "jabber:client").map(Element::text).unwrap_or_default();
    let mut est =
        Established::new(session, bob.to_owned(), thread, rev.key, settings.logging, settings.disclosure, k);
    let content = if stanza.children().any(|c| c.is("c", esession_stanza::NS)) {
        match est.session.decrypt(stanza) {
            Ok((clear, opened)) => {
                let init = format!("{{{}}}init", esession_forms::esession::INIT_NS);
                let unprotected = opened.unprotected.into_iter().filter(|n| *n != init).collect();
                Some(Content { stanza: clear, unprotected })
            }
            Err(_) => return Err(Error::Refused(Check::Content)),
        }
    } else {
        None
    };
    if r.terminate {
        est.session.close();
    }
    Ok((est, content))
}
