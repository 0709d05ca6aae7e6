//! Parses an ESession request (XEP-0116 §4.2) as it arrives in a `<message/>`, reads the typed
//! offers, and prints the normalized form content that the MACs cover.
//!
//! `cargo run -p esession-forms --example request`

use esession_crypto::Profile;
use esession_forms::esession::{Request, Wrapper};
use esession_forms::{dataform::DataForm, normalize, xml};

const STANZA: &str = r#"<message xmlns="jabber:client" from="alice@example.org/pda" to="bob@example.com">
  <thread>ffd7076498744578d10edabfe7f4a866</thread>
  <feature xmlns="http://jabber.org/protocol/feature-neg">
    <x xmlns="jabber:x:data" type="form">
      <field type="hidden" var="FORM_TYPE"><value>urn:xmpp:ssn</value></field>
      <field type="boolean" var="accept"><value>1</value><required/></field>
      <field type="list-single" var="logging"><option><value>mustnot</value></option><option><value>may</value></option><required/></field>
      <field type="list-single" var="disclosure"><option><value>never</value></option><required/></field>
      <field type="list-single" var="security"><option><value>e2e</value></option><required/></field>
      <field type="list-single" var="modp"><option><value>14</value></option><option><value>5</value></option></field>
      <field type="list-single" var="crypt_algs"><option><value>aes256-ctr</value></option><option><value>aes128-ctr</value></option></field>
      <field type="list-single" var="hash_algs"><option><value>sha256</value></option></field>
      <field type="list-single" var="compress"><option><value>none</value></option></field>
      <field type="list-multi" var="stanzas"><option><value>message</value></option></field>
      <field type="list-single" var="init_pubkey"><option><value>none</value></option></field>
      <field type="list-single" var="resp_pubkey"><option><value>none</value></option></field>
      <field type="list-single" var="ver"><option><value>1.0</value></option></field>
      <field type="text-single" var="rekey_freq"><value>1</value></field>
      <field type="hidden" var="my_nonce"><value>AAECAwQFBgc=</value></field>
      <field type="list-single" var="sas_algs"><option><value>sas28x5</value></option></field>
      <field type="hidden" var="dhhashes"><value>AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=</value><value>AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=</value></field>
    </x>
  </feature>
</message>"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stanza = xml::parse(STANZA)?;
    let wrapper = Wrapper::find(&stanza).ok_or("no ESession form in the stanza")?;
    let (_, x) = Wrapper::unwrap(wrapper)?;
    let request = Request::parse(&DataForm::parse(x)?)?;
    println!("4-message request: {}", request.is_four_message());
    println!("{request:#?}");
    // What Alice's MAC covers: the form she sent, normalized (XEP-0116 §4.5, A11).
    let form_a = normalize::form_content(Profile::Xep, x, &[])?;
    println!("formA ({} octets): {}", form_a.len(), String::from_utf8_lossy(&form_a));
    Ok(())
}
