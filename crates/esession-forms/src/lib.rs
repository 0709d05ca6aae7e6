//! # esession-forms
//!
//! Every form the Encrypted Sessions protocols exchange, as typed Rust values over minidom:
//!
//! * [`dataform`]: the XEP-0004 model with strict parsing and bounded sizes;
//! * [`names`]: typed wire names of every option field (with `Unknown` cases);
//! * [`esession`]: the ESession forms (request, response, accept, Bob's identity, SSN answer,
//!   terminate, XEP-0187 offline options) and their wrappers (`<feature/>`, `<init/>`);
//! * [`keyvalue`]: XML-DSig `<KeyValue/>`, `<SignatureValue/>`, `<fingerprint/>`;
//! * [`normalize`]: the normalization every MAC and signature depends on, per profile;
//! * [`negotiation`]: choosing among offered options and naming the unacceptable fields.
//!
//! ```
//! use esession_forms::{dataform::DataForm, esession::{Request, Wrapper}, normalize, xml};
//! use esession_crypto::Profile;
//!
//! # fn main() -> Result<(), esession_forms::Error> {
//! let stanza = xml::parse(r#"<message xmlns="jabber:client"><feature xmlns="http://jabber.org/protocol/feature-neg">
//!   <x xmlns="jabber:x:data" type="form">
//!     <field type="hidden" var="FORM_TYPE"><value>urn:xmpp:ssn</value></field>
//!     <field type="boolean" var="accept"><value>1</value><required/></field>
//!     <field type="list-single" var="logging"><option><value>may</value></option><required/></field>
//!     <field type="list-single" var="disclosure"><option><value>never</value></option><required/></field>
//!     <field type="list-single" var="security"><option><value>e2e</value></option><required/></field>
//!     <field type="list-single" var="modp"><option><value>14</value></option></field>
//!     <field type="list-single" var="crypt_algs"><option><value>aes128-ctr</value></option></field>
//!     <field type="list-single" var="hash_algs"><option><value>sha256</value></option></field>
//!     <field type="list-single" var="compress"><option><value>none</value></option></field>
//!     <field type="list-multi" var="stanzas"><option><value>message</value></option></field>
//!     <field type="list-single" var="init_pubkey"><option><value>none</value></option></field>
//!     <field type="list-single" var="resp_pubkey"><option><value>none</value></option></field>
//!     <field type="list-single" var="ver"><option><value>1.0</value></option></field>
//!     <field type="text-single" var="rekey_freq"><value>1</value></field>
//!     <field type="hidden" var="my_nonce"><value>AAECAwQFBgc=</value></field>
//!     <field type="list-single" var="sas_algs"><option><value>sas28x5</value></option></field>
//!     <field type="hidden" var="dhhashes"><value>AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=</value></field>
//!   </x></feature></message>"#)?;
//! let wrapper = Wrapper::find(&stanza).expect("an ESession form");
//! let (_, x) = Wrapper::unwrap(wrapper)?;
//! let request = Request::parse(&DataForm::parse(x)?)?;
//! assert!(request.is_four_message());
//! // What a MAC covers: the received form, normalized.
//! let form_a = normalize::form_content(Profile::Xep, x, &[])?;
//! assert!(form_a.starts_with(br#"<field type="hidden" var="FORM_TYPE"><value>urn:xmpp:ssn</value></field>"#));
//! # Ok(()) }
//! ```
//!
//! IDs in the documentation such as `A11` (a resolution of an ambiguity of the specifications),
//! `I27` (an interpretation) or `X116-4.5.1-03` (a normative sentence) are defined in the
//! repository's `docs/resolutions.md` and `docs/conformance.md`.

pub mod dataform;
mod error;
pub mod esession;
pub mod keyvalue;
pub mod names;
pub mod negotiation;
pub mod normalize;
pub mod xml;

pub use error::{Error, Result};

// The XML crates of this crate's signatures (`minidom::Element` everywhere, `rxml::NcName`
// from `xml::attr_name`), re-exported so that users name the same versions.
pub use minidom;
pub use rxml;
