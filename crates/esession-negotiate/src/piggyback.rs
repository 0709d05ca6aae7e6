//! Encrypted content in the same stanza as the last negotiation message (XEP-0116 §4.6.4 for
//! Alice's 3-message accept, §4.7.4 for Bob's identity): attached once the session exists, and
//! on receipt decrypted only after the negotiation has verified.

use crate::outputs::Established;
use esession_forms::esession::{FEATURE_NEG_NS, INIT_NS};
use esession_stanza::{EncryptOptions, NS, Session};
use minidom::Element;

/// Encrypts `content` (a stanza whose children are the content) with `session` and moves the
/// resulting `<c/>` into `negotiation`.
pub(crate) fn attach(
    session: &mut Session,
    negotiation: &mut Element,
    content: &Element,
    rng: &mut dyn rand_core::CryptoRng,
) -> crate::Result<()> {
    let wire = session.encrypt(content, EncryptOptions::default(), rng)?;
    if let Some(c) = wire.children().find(|c| c.is("c", NS)) {
        negotiation.append_child(c.clone());
    }
    Ok(())
}

/// Decrypts the `<c/>` that came with the last negotiation message, if any: the content and
/// the names of what came in clear beside it, other than the negotiation form itself (dropped).
pub(crate) fn open(est: &mut Established, stanza: &Element) -> crate::Result<Option<(Element, Vec<String>)>> {
    if stanza.children().all(|c| !c.is("c", NS)) {
        return Ok(None);
    }
    let (clear, opened) = est.session.decrypt(stanza)?;
    let form = [format!("{{{FEATURE_NEG_NS}}}feature"), format!("{{{INIT_NS}}}init")];
    let unprotected = opened.unprotected.into_iter().filter(|n| !form.contains(n)).collect();
    Ok(Some((clear, unprotected)))
}
