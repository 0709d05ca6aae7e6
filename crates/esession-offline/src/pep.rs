//! The PEP (XEP-0163) / PubSub (XEP-0060) stanzas of XEP-0187 §3.1-§3.4, with the A16 reading:
//! node configuration as a `submit` form with `<value/>`s, withdrawal as an empty `<item/>`.

use crate::Audience;
use esession_forms::dataform::{DataForm, Field, FieldType, FormType};
use minidom::Element;

/// The PubSub namespace.
pub const PUBSUB_NS: &str = "http://jabber.org/protocol/pubsub";
/// The PubSub error namespace (`<precondition-not-met/>` and the like).
pub const PUBSUB_ERRORS_NS: &str = "http://jabber.org/protocol/pubsub#errors";
const CLIENT: &str = "jabber:client";

fn attr(e: &mut Element, name: &str, value: &str) {
    if let Ok(n) = esession_forms::xml::attr_name(name) {
        e.set_attr(minidom::rxml::Namespace::NONE, n, value.to_owned());
    }
}

fn iq(kind: &str, id: &str, to: Option<&str>, child: Element) -> Element {
    let mut iq = Element::bare("iq", CLIENT);
    attr(&mut iq, "type", kind);
    attr(&mut iq, "id", id);
    if let Some(to) = to {
        attr(&mut iq, "to", to);
    }
    iq.append_child(child);
    iq
}

/// The node configuration: no notifications, never send the last item, the audience's access
/// model (XEP-0187 §3.1).
#[must_use]
pub fn node_config(audience: Audience) -> DataForm {
    let mut f = DataForm::new(FormType::Submit);
    f.fields.push(
        Field::new("FORM_TYPE")
            .typed(FieldType::Hidden)
            .value("http://jabber.org/protocol/pubsub#node_config"),
    );
    f.fields.push(Field::new("pubsub#deliver_notifications").value("0"));
    f.fields.push(Field::new("pubsub#send_last_published_item").value("never"));
    f.fields.push(Field::new("pubsub#access_model").value(audience.access_model()));
    f
}

/// Creates and configures the options node (Examples 1 and 2).
#[must_use]
pub fn create_node(audience: Audience, id: &str) -> Element {
    let mut create = Element::bare("create", PUBSUB_NS);
    attr(&mut create, "node", audience.node());
    let configure =
        Element::builder("configure", PUBSUB_NS).append(node_config(audience).to_element()).build();
    let ps = Element::builder("pubsub", PUBSUB_NS).append(create).append(configure).build();
    iq("set", id, None, ps)
}

/// The publish-options of XEP-0060 §7.1.5: FORM_TYPE `...pubsub#publish-options` and only the
/// access model, a precondition the server checks against the node (ejabberd refuses any other
/// field there with `resource-constraint`); the rest of the configuration is set when the node
/// is created ([`create_node`]) or reconfigured ([`configure_node`]). A node the publish
/// creates gets the access model from it.
#[must_use]
pub fn publish_options(audience: Audience) -> DataForm {
    let mut f = DataForm::new(FormType::Submit);
    f.fields.push(Field::new("FORM_TYPE").typed(FieldType::Hidden).value(PUBLISH_OPTIONS_NS));
    f.fields.push(Field::new("pubsub#access_model").value(audience.access_model()));
    f
}

/// The FORM_TYPE of publish-options (XEP-0060 §7.1.5).
pub const PUBLISH_OPTIONS_NS: &str = "http://jabber.org/protocol/pubsub#publish-options";

fn publish_item(audience: Audience, id: &str, item: Element) -> Element {
    let mut publish = Element::bare("publish", PUBSUB_NS);
    attr(&mut publish, "node", audience.node());
    publish.append_child(item);
    let options =
        Element::builder("publish-options", PUBSUB_NS).append(publish_options(audience).to_element()).build();
    let ps = Element::builder("pubsub", PUBSUB_NS).append(publish).append(options).build();
    iq("set", id, None, ps)
}

/// Publishes the options form (Examples 3 and 4).
#[must_use]
pub fn publish(audience: Audience, id: &str, options: Element) -> Element {
    publish_item(audience, id, Element::builder("item", PUBSUB_NS).append(options).build())
}

/// Withdraws the options: an empty `<item/>` (Example 8).
#[must_use]
pub fn withdraw(audience: Audience, id: &str) -> Element {
    publish_item(audience, id, Element::bare("item", PUBSUB_NS))
}

/// The PubSub owner namespace.
pub const PUBSUB_OWNER_NS: &str = "http://jabber.org/protocol/pubsub#owner";

/// Sets the configuration of an existing options node (XEP-0060 §8.2.4, owner `<configure/>`):
/// what a publish whose precondition failed needs (a node created earlier with another access
/// model, or created by the server without our configuration).
#[must_use]
pub fn configure_node(audience: Audience, id: &str) -> Element {
    let mut configure = Element::bare("configure", PUBSUB_OWNER_NS);
    attr(&mut configure, "node", audience.node());
    configure.append_child(node_config(audience).to_element());
    iq("set", id, None, Element::builder("pubsub", PUBSUB_OWNER_NS).append(configure).build())
}

/// Deletes the options node (XEP-0060 §8.4): the fallback when a server refuses the empty
/// `<item/>` of Example 8 (Prosody answers it with `bad-request`: a PEP item needs a payload).
/// The next publication creates the node again.
#[must_use]
pub fn delete_node(audience: Audience, id: &str) -> Element {
    let mut delete = Element::bare("delete", PUBSUB_OWNER_NS);
    attr(&mut delete, "node", audience.node());
    iq("set", id, None, Element::builder("pubsub", PUBSUB_OWNER_NS).append(delete).build())
}

/// Bob's request for Alice's options (Examples 5 and 6).
#[must_use]
pub fn items_request(audience: Audience, alice_bare: &str, id: &str) -> Element {
    let mut items = Element::bare("items", PUBSUB_NS);
    attr(&mut items, "node", audience.node());
    iq("get", id, Some(alice_bare), Element::builder("pubsub", PUBSUB_NS).append(items).build())
}

/// The options form inside a PEP items result or publish (an item without a form means no
/// options, A16).
#[must_use]
pub fn options_in(stanza: &Element) -> Option<&Element> {
    let ps = stanza.children().find(|c| c.is("pubsub", PUBSUB_NS))?;
    let container = ps.children().find(|c| c.name() == "items" || c.name() == "publish")?;
    let item = container.children().find(|c| c.name() == "item")?;
    item.children().find(|c| c.is("x", esession_forms::dataform::NS))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn form_in(iq: &Element, ns: &str, container: &str) -> DataForm {
        let ps = iq.get_child("pubsub", ns).unwrap();
        let x = ps.get_child(container, ns).unwrap().get_child("x", esession_forms::dataform::NS).unwrap();
        DataForm::parse(x).unwrap()
    }

    #[test]
    fn publish_options_carry_their_form_type_and_only_the_access_model() {
        // XEP-0060 §7.1.5: FORM_TYPE publish-options; ejabberd refuses any field it does not
        // know there (resource-constraint), so the rest of the configuration is not repeated.
        for audience in [Audience::Subscribers, Audience::Everyone] {
            for iq in [
                publish(audience, "p", Element::bare("x", esession_forms::dataform::NS)),
                withdraw(audience, "w"),
            ] {
                let f = form_in(&iq, PUBSUB_NS, "publish-options");
                let vars: Vec<&str> = f.fields.iter().filter_map(|f| f.var.as_deref()).collect();
                assert_eq!(vars, ["FORM_TYPE", "pubsub#access_model"]);
                assert_eq!(f.field("FORM_TYPE").unwrap().values, [PUBLISH_OPTIONS_NS]);
                assert_eq!(f.field("pubsub#access_model").unwrap().values, [audience.access_model()]);
            }
        }
    }

    #[test]
    fn the_node_configuration_goes_with_creation_and_reconfiguration() {
        for audience in [Audience::Subscribers, Audience::Everyone] {
            let create = form_in(&create_node(audience, "c"), PUBSUB_NS, "configure");
            let configure_iq = configure_node(audience, "r");
            let configure = form_in(&configure_iq, PUBSUB_OWNER_NS, "configure");
            for f in [create, configure] {
                assert_eq!(
                    f.field("FORM_TYPE").unwrap().values,
                    ["http://jabber.org/protocol/pubsub#node_config"]
                );
                assert_eq!(f.field("pubsub#deliver_notifications").unwrap().values, ["0"]);
                assert_eq!(f.field("pubsub#send_last_published_item").unwrap().values, ["never"]);
                assert_eq!(f.field("pubsub#access_model").unwrap().values, [audience.access_model()]);
            }
            let c = configure_iq.get_child("pubsub", PUBSUB_OWNER_NS).unwrap();
            assert_eq!(
                c.get_child("configure", PUBSUB_OWNER_NS).unwrap().attr("node"),
                Some(audience.node())
            );
            assert_eq!((configure_iq.attr("type"), configure_iq.attr("to")), (Some("set"), None));
        }
    }
}
