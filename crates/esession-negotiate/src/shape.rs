//! The free choices of a sender (field order and attributes, nonce lengths, decoys, a random
//! srshash) go through an optional [`Shaper`]: every MAC covers the form as *sent*, so a party
//! stays correct whatever layout it sends. A vector replay uses it to send the recorded forms.

use esession_crypto::mpi;
use minidom::Element;

/// Which form a party is about to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormKind {
    /// Alice's request.
    Request,
    /// Bob's response.
    Response,
    /// Alice's accept.
    Accept,
    /// Bob's identity (4th message).
    BobIdentity,
}

/// Rewrites the `<x/>` a party proposes to send. The party re-reads the values it needs from the
/// shaped form; `identity` and `mac` are filled in by the party afterwards.
pub trait Shaper: Send {
    /// The form to send instead of `proposed`.
    fn shape(&mut self, kind: FormKind, proposed: Element) -> Element;
}

/// Sets the values of field `var` of a data form to the Base64 of `value` (adding the field at
/// the end if it is missing).
pub(crate) fn set_b64(x: &mut Element, var: &str, value: &[u8]) {
    let text = mpi::b64_encode(value);
    let ns = x.ns();
    let field = x.children_mut().find(|f| f.name() == "field" && f.attr("var") == Some(var));
    match field {
        Some(f) => {
            let mut rebuilt = Element::bare("field", f.ns());
            for ((ans, n), v) in f.attrs().iter() {
                rebuilt.attrs_mut().insert(ans.clone(), n.clone(), v.clone());
            }
            for c in f.children().filter(|c| c.name() != "value") {
                rebuilt.append_child(c.clone());
            }
            rebuilt.append_child(Element::builder("value", f.ns()).append(text).build());
            *f = rebuilt;
        }
        None => {
            let mut f = Element::bare("field", ns.clone());
            if let Ok(n) = esession_forms::xml::attr_name("var") {
                f.set_attr(minidom::rxml::Namespace::NONE, n, var.to_owned());
            }
            f.append_child(Element::builder("value", ns).append(text).build());
            x.append_child(f);
        }
    }
}
