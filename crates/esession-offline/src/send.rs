//! Bob sending to an offline Alice (XEP-0187 §3.2, §3.3): verify her options, then start the
//! session in one stanza as a 3-message responder with `resp_pubkey` = `key`.

use crate::{Check, Error, Result, parse_xep0082, xep0082};
use esession_crypto::Profile;
use esession_forms::dataform::DataForm;
use esession_forms::esession::OfflineOptions;
use esession_forms::normalize::form_content;
use esession_negotiate::published::{self, Unanswerable};
use esession_negotiate::{BareJid, Config, Entropy, Established, Jid, Proof, TrustStore};
use minidom::Element;

/// Options that passed every check: a trusted signature, not expired. Only [`verify`] makes
/// one, and [`start`] consumes it (the signature's proof opens one session).
#[derive(Debug)]
pub struct Verified {
    options: OfflineOptions,
    alice: BareJid,
    proof: Proof,
}

impl Verified {
    /// The options.
    #[must_use]
    pub fn options(&self) -> &OfflineOptions {
        &self.options
    }

    /// Alice's bare JID.
    #[must_use]
    pub fn alice(&self) -> &BareJid {
        &self.alice
    }

    /// The key whose signature verified.
    #[must_use]
    pub fn signer(&self) -> Option<&esession_crypto::PublicKey> {
        self.proof.key()
    }
}

/// Verifies fetched options (§3.2): one signature must verify with a key trusted for Alice's
/// JID; the options must not have expired (now >= expires refuses, I27); each field needs a
/// supported option (checked by [`start`]).
///
/// # Errors
/// [`Error::Refused`] with the failed check.
pub fn verify(
    x: &Element,
    alice: &BareJid,
    trust: &dyn TrustStore,
    now: chrono::DateTime<chrono::Utc>,
    profile: Profile,
) -> Result<Verified> {
    if esession_forms::xml::measure(x, esession_forms::xml::Limits::NEGOTIATION).is_err() {
        return Err(Error::Refused(Check::Form));
    }
    let options = DataForm::parse(x)
        .and_then(|f| OfflineOptions::parse(&f))
        .map_err(|_| Error::Refused(Check::Form))?;
    let expires = parse_xep0082(&options.expires).ok_or(Error::Refused(Check::Form))?;
    // X187-3.2-05: expired options start nothing.
    if now >= expires {
        return Err(Error::Refused(Check::OptionsExpired));
    }
    let content = form_content(profile, x, &["signs"]).map_err(|_| Error::Refused(Check::Form))?;
    // X187-3.2-04: a signature by a key trusted for Alice, or nothing.
    let proof = published::verify_signed(profile, &content, &options.signs, trust, alice)
        .map_err(|_| Error::Refused(Check::OptionsSignature))?;
    Ok(Verified { options, alice: alice.clone(), proof })
}

/// The SHIM `Created` header XEP-0187 §4 asks Bob to put in the encrypted content (I30).
#[must_use]
pub fn created_header(now: chrono::DateTime<chrono::Utc>) -> Element {
    let mut header =
        Element::builder("header", "http://jabber.org/protocol/shim").append(xep0082(now)).build();
    if let Ok(n) = esession_forms::xml::attr_name("name") {
        header.set_attr(minidom::rxml::Namespace::NONE, n, "Created".to_owned());
    }
    Element::builder("headers", "http://jabber.org/protocol/shim").append(header).build()
}

/// `content` with the `Created` header after its body (XEP-0187 Example 10, I30).
fn with_created(content: &Element, now: chrono::DateTime<chrono::Utc>) -> Element {
    let mut children: Vec<Element> = content.children().cloned().collect();
    let at = children.iter().position(|c| c.name() == "body").map_or(children.len(), |i| i + 1);
    children.insert(at, created_header(now));
    let mut rebuilt = Element::bare(content.name(), content.ns());
    for c in children {
        rebuilt.append_child(c);
    }
    rebuilt
}

/// Starts the offline session (§3.3): the `<init/>` stanza with form_B, Bob's identity and (if
/// `content` is given) the encrypted content with a `Created` header; with `terminate`, object
/// encryption. Returns the stanza and Bob's side of the session (closed if `terminate`).
///
/// # Errors
/// [`Error::Refused`] when the options cannot be satisfied (unsupported fields, a bad e);
/// [`Error::Config`] without an identity key.
pub fn start(
    v: Verified,
    cfg: &Config,
    thread: &str,
    content: Option<Element>,
    terminate: bool,
    now: chrono::DateTime<chrono::Utc>,
    entropy: &mut dyn Entropy,
) -> Result<(Element, Established)> {
    let request = published::as_request(&v.options.offers, &v.options.my_nonce, &v.options.dhkeys);
    let to: Jid = match &v.options.match_resource {
        Some(r) => v.alice.with_resource_str(r).map(Jid::from).map_err(|_| Error::Refused(Check::Form))?,
        None => Jid::from(v.alice.clone()),
    };
    let content = content.map(|c| with_created(&c, now));
    // X187-3.3-01: Bob continues as a 3-message responder to the options read as a request;
    // X187-3.3-03: without a pubkey field, `resp_pubkey` is `key` (`published::answer`).
    let (mut msg, est) =
        published::answer(cfg, &request, v.proof, to, thread, content.as_ref(), terminate, entropy).map_err(
            |e| match e {
                Unanswerable::Unsupported(_) => Error::Refused(Check::OptionsUnsupported),
                Unanswerable::BadE => Error::Refused(Check::DRange),
                Unanswerable::Failed(esession_negotiate::Error::Config(w)) => Error::Config(w),
                Unanswerable::Failed(_) => Error::Config("the offline start could not be made"),
                _ => Error::Config("the offline start could not be made"),
            },
        )?;
    if let Ok(n) = esession_forms::xml::attr_name("type") {
        msg.set_attr(minidom::rxml::Namespace::NONE, n, "chat".to_owned());
    }
    if v.options.match_resource.is_some() {
        msg.append_child(amp_match_resource());
    }
    Ok((msg, est))
}

/// `<amp><rule action='error' condition='match-resource' value='other'/></amp>` without
/// per-hop (A15).
#[must_use]
pub fn amp_match_resource() -> Element {
    let mut rule = Element::bare("rule", "http://jabber.org/protocol/amp");
    for (n, v) in [("action", "error"), ("condition", "match-resource"), ("value", "other")] {
        if let Ok(name) = esession_forms::xml::attr_name(n) {
            rule.set_attr(minidom::rxml::Namespace::NONE, name, v.to_owned());
        }
    }
    Element::builder("amp", "http://jabber.org/protocol/amp").append(rule).build()
}
