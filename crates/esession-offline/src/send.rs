//! Bob sending to an offline Alice (XEP-0187 §3.2, §3.3): verify her options, then start the
//! session in one stanza as a 3-message responder with `resp_pubkey` = `key`.

use crate::{Check, Error, Result, parse_xep0082, xep0082};
use esession_crypto::kdf::SessionKeys;
use esession_crypto::{Profile, PublicKey};
use esession_forms::dataform::DataForm;
use esession_forms::esession::{DhOffer, OfflineOptions, Request, Response, Wrapper};
use esession_forms::names::PubkeyMethod;
use esession_forms::negotiation::choose;
use esession_forms::normalize::form_content;
use esession_negotiate::sigma::{self, Algs};
use esession_negotiate::{Config, Entropy, Established, Settings, TrustStore, bare, open_session};
use minidom::Element;

/// Options that passed every check: a trusted signature, not expired, supported.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The options.
    pub options: OfflineOptions,
    /// Alice's bare JID.
    pub alice: String,
    /// The key whose signature verified.
    pub signer: PublicKey,
}

/// Verifies fetched options (§3.2): one signature must verify with a key trusted for Alice's
/// JID; the options must not have expired (now >= expires refuses, I27); each field needs a
/// supported option (checked again by [`start`]).
///
/// # Errors
/// [`Error::Refused`] with the failed check.
pub fn verify(
    x: &Element,
    alice_jid: &str,
    trust: &dyn TrustStore,
    now: chrono::DateTime<chrono::Utc>,
    profile: Profile,
) -> Result<Verified> {
    let options = DataForm::parse(x)
        .and_then(|f| OfflineOptions::parse(&f))
        .map_err(|_| Error::Refused(Check::Form))?;
    let expires = parse_xep0082(&options.expires).ok_or(Error::Refused(Check::Form))?;
    // X187-3.2-05: expired options start nothing.
    if now >= expires {
        return Err(Error::Refused(Check::OptionsExpired));
    }
    let content = form_content(profile, x, &["signs"]).map_err(|_| Error::Refused(Check::Form))?;
    let alice = bare(alice_jid).to_owned();
    // X187-3.2-04: a signature by a key trusted for Alice, or nothing.
    let signer = options
        .signs
        .iter()
        .find_map(|sig| {
            trust.for_jid(&alice).into_iter().find_map(|r| {
                r.key.verify(profile, &r.key.alg(), &content, sig).is_ok().then(|| r.key.clone())
            })
        })
        .ok_or(Error::Refused(Check::OptionsSignature))?;
    Ok(Verified { options, alice, signer })
}

fn as_request(o: &OfflineOptions) -> Request {
    Request {
        accept: true,
        offers: o.offers.clone(),
        init_pubkey: vec![PubkeyMethod::Key],
        resp_pubkey: vec![PubkeyMethod::Key],
        my_nonce: o.my_nonce.clone(),
        sas_algs: Vec::new(),
        dh: DhOffer::Keys(o.dhkeys.clone()),
    }
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

/// Starts the offline session: the `<init/>` stanza with form_B, Bob's identity and (if
/// `content` is given) the encrypted content with a `Created` header; with `terminate`, object
/// encryption. Returns the stanza and Bob's side of the session (closed if `terminate`).
///
/// # Errors
/// [`Error::Refused`] when the options cannot be satisfied (unsupported fields, a bad e).
#[allow(clippy::too_many_arguments)]
pub fn start(
    v: &Verified,
    cfg: &Config,
    thread: &str,
    content: Option<Element>,
    terminate: bool,
    now: chrono::DateTime<chrono::Utc>,
    entropy: &mut dyn Entropy,
) -> Result<(Element, Established)> {
    let req = as_request(&v.options);
    let mut support = cfg.support.clone();
    support.init_pubkey = vec![PubkeyMethod::Key];
    let choices = choose(&req, &support).map_err(|_| Error::Refused(Check::OptionsUnsupported))?;
    let (group, idx) = choices.modp;
    let e = v.options.dhkeys.get(idx).cloned().ok_or(Error::Refused(Check::Form))?;
    let nb = entropy.nonce();
    let ca = entropy.counter(cfg.profile);
    let cb = ca ^ (1 << 127);
    let y = entropy.dh(group)?;
    let d = y.public().to_vec();
    let algs = Algs {
        profile: cfg.profile,
        hash: choices.hash_alg.clone(),
        cipher: choices.crypt_alg.clone(),
        sign: choices.sign_alg.clone(),
    };
    // A bad e: terminate without an error (§3.3 step 1).
    let k = y.agree_reusable(&e).map_err(|_| Error::Refused(Check::DRange))?.session_key(&algs.hash)?;
    let keys = SessionKeys::derive(&algs.hash, &k)?;
    // Offline: no `accept`, no pubkey fields (A1); `terminate` is part of form_B (I4).
    let mut response = Response {
        accept: None,
        init_pubkey: None,
        resp_pubkey: None,
        sas_alg: None,
        terminate,
        ..choices.response(nb.clone(), d.clone(), v.options.my_nonce.clone(), ca)
    };
    let gajim = cfg.profile == Profile::Gajim;
    let x0 = response.to_form(cfg.profile).to_element_with(gajim);
    // form_B includes `terminate` (I4).
    let form_b =
        form_content(cfg.profile, &x0, &["identity", "mac"]).map_err(|_| Error::Config("normalize"))?;
    let hidden = sigma::hide(
        &algs,
        &keys.responder,
        cb,
        &PubkeyMethod::Key,
        cfg.identity.as_ref(),
        &[&v.options.my_nonce, &nb, &d],
        &[&form_b],
        entropy.rng(),
    )
    .map_err(|_| Error::Config("an identity key is needed to start an offline session"))?;
    response.identity = Some(hidden.id);
    response.mac = Some(hidden.m);
    let x = response.to_form(cfg.profile).to_element_with(gajim);
    let settings = Settings::from_response(&response);
    let session = open_session(&algs, &settings, &keys, false, hidden.counter_after, ca, y, e)
        .map_err(|_| Error::Config("session"))?;
    let to = match &v.options.match_resource {
        Some(r) => format!("{}/{r}", v.alice),
        None => v.alice.clone(),
    };
    let mut est = Established::new(
        session,
        to.clone(),
        thread.to_owned(),
        None,
        settings.logging,
        settings.disclosure,
        k,
    );
    let mut msg = esession_negotiate::wire::message(&to, thread, vec![Wrapper::Init.wrap(x)]);
    if let Ok(n) = esession_forms::xml::attr_name("type") {
        msg.set_attr(minidom::rxml::Namespace::NONE, n, "chat".to_owned());
    }
    if let Some(mut content) = content {
        // The Created header goes after the body (XEP-0187 Example 10, I30).
        let mut children: Vec<Element> = content.children().cloned().collect();
        let at = children.iter().position(|c| c.name() == "body").map_or(children.len(), |i| i + 1);
        children.insert(at, created_header(now));
        let mut rebuilt = Element::bare(content.name(), content.ns());
        for c in children {
            rebuilt.append_child(c);
        }
        content = rebuilt;
        let wire = est
            .session
            .encrypt(&content, esession_stanza::EncryptOptions::default(), entropy.rng())
            .map_err(|_| Error::Config("encrypt"))?;
        if let Some(c) = wire.children().find(|c| c.is("c", esession_stanza::NS)) {
            msg.append_child(c.clone());
        }
    }
    if v.options.match_resource.is_some() {
        msg.append_child(amp_match_resource());
    }
    if terminate {
        est.session.close();
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
