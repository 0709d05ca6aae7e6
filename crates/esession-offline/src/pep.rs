//! The PEP (XEP-0163) / PubSub (XEP-0060) stanzas of XEP-0187 §3.1-§3.4, with the A16 reading:
//! node configuration as a `submit` form with `<value/>`s, withdrawal as an empty `<item/>`.

use crate::Audience;
use esession_forms::dataform::{DataForm, Field, FieldType, FormType};
use minidom::Element;

/// The PubSub namespace.
pub const PUBSUB_NS: &str = "http://jabber.org/protocol/pubsub";
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

fn publish_item(audience: Audience, id: &str, item: Element) -> Element {
    let mut publish = Element::bare("publish", PUBSUB_NS);
    attr(&mut publish, "node", audience.node());
    publish.append_child(item);
    // publish-options: the same configuration, so the node is right even if auto-created.
    let options =
        Element::builder("publish-options", PUBSUB_NS).append(node_config(audience).to_element()).build();
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
