//! The requests to our own server that publish or withdraw offline options (XEP-0187 §3.1,
//! §3.4 over XEP-0163/XEP-0060), as sans-IO flows: each answer decides the next request. What
//! a server that refuses does next is the rule here, so that every client of the engine does the
//! same; [`crate::Client`] only sends the requests and hands back the answers.

use esession_offline::{Audience, pep};
use minidom::Element;
use std::collections::VecDeque;

const STANZAS_NS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// What to do next in a flow of requests to our server.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PepStep {
    /// Send this IQ and hand its answer to the flow.
    Request(Element),
    /// Done: the server did what the flow was for.
    Done,
    /// The server refused, with this error condition.
    Failed {
        /// The condition of the server's last error answer.
        condition: String,
    },
}

/// The error condition of an error stanza (`undefined-condition` when it names none).
#[must_use]
pub fn condition(e: &Element) -> String {
    e.get_child("error", "jabber:client")
        .and_then(|err| err.children().find(|c| c.ns() == STANZAS_NS).map(|c| c.name().to_owned()))
        .unwrap_or_else(|| "undefined-condition".into())
}

/// Whether an error answer to a publish says its publish-options did not match the node
/// (XEP-0060 §7.1.5: `conflict` with `<precondition-not-met/>`).
fn precondition_failed(e: &Element) -> bool {
    e.get_child("error", "jabber:client").is_some_and(|err| {
        err.children().any(|c| c.name() == "precondition-not-met" && c.ns() == pep::PUBSUB_ERRORS_NS)
    })
}

fn is_result(e: &Element) -> bool {
    e.attr("type") == Some("result")
}

fn with_id(mut iq: Element, id: &str) -> Element {
    super::set_attr(&mut iq, "id", id);
    iq
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publishing {
    Start,
    /// The node's creation (with its configuration): its answer does not matter (a node that
    /// exists refuses it harmlessly).
    Create,
    /// A publish; `retried` once the node was reconfigured for it.
    Publish {
        retried: bool,
    },
    /// The node left with another configuration is being configured as we need it.
    Configure,
    Ended,
}

/// Publishing one set of options: the node is created with its configuration, then each item
/// is published with the access model as a precondition (publish-options). A node left with
/// another configuration (an earlier version, another client, a node the server created)
/// refuses the precondition: it is configured as we need it (owner `<configure/>`) and the item
/// published once more. Any other refusal ends the flow.
#[derive(Debug)]
pub struct PublishFlow {
    audience: Audience,
    create: Option<Element>,
    publishes: VecDeque<Element>,
    current: Option<Element>,
    last_error: String,
    state: Publishing,
}

impl PublishFlow {
    /// The flow of one set's IQs as [`crate::Engine::go_offline`] made them
    /// (`esession_offline::away::Published::iqs`: the creation first, then the publishes).
    #[must_use]
    pub fn new(audience: Audience, iqs: &[Element]) -> Self {
        let mut iqs = iqs.iter().cloned();
        Self {
            audience,
            create: iqs.next(),
            publishes: iqs.collect(),
            current: None,
            last_error: String::new(),
            state: Publishing::Start,
        }
    }

    /// The next step: `answer` is the answer to the last request (`None` at the start), `id` a
    /// fresh IQ id for a request the flow makes itself.
    pub fn next(&mut self, answer: Option<&Element>, id: &str) -> PepStep {
        match (self.state, answer) {
            (Publishing::Start, _) => match self.create.take() {
                Some(c) => {
                    self.state = Publishing::Create;
                    PepStep::Request(c)
                }
                None => self.publish_next(),
            },
            (Publishing::Create, _) => self.publish_next(),
            (Publishing::Publish { .. }, Some(r)) if is_result(r) => self.publish_next(),
            (Publishing::Publish { retried: false }, Some(r)) if precondition_failed(r) => {
                self.last_error = condition(r);
                self.state = Publishing::Configure;
                PepStep::Request(pep::configure_node(self.audience, id))
            }
            (Publishing::Publish { .. }, r) => {
                self.fail(r.map_or_else(|| "undefined-condition".into(), condition))
            }
            (Publishing::Configure, Some(r)) if is_result(r) => match self.current.clone() {
                Some(again) => {
                    self.state = Publishing::Publish { retried: true };
                    PepStep::Request(with_id(again, id))
                }
                None => self.fail(self.last_error.clone()),
            },
            // The node could not be configured: the publish's refusal is what failed.
            (Publishing::Configure, _) => self.fail(self.last_error.clone()),
            (Publishing::Ended, _) => PepStep::Done,
        }
    }

    fn publish_next(&mut self) -> PepStep {
        match self.publishes.pop_front() {
            Some(p) => {
                self.current = Some(p.clone());
                self.state = Publishing::Publish { retried: false };
                PepStep::Request(p)
            }
            None => {
                self.state = Publishing::Ended;
                PepStep::Done
            }
        }
    }

    fn fail(&mut self, condition: String) -> PepStep {
        self.state = Publishing::Ended;
        PepStep::Failed { condition }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Withdrawing {
    Start,
    Withdraw,
    Delete,
    Ended,
}

/// Withdrawing one set of options: XEP-0187 Example 8 (an empty `<item/>`) first; when the
/// server refuses it (Prosody: `bad-request`, a PEP item needs a payload), the node is deleted,
/// which a node that is not there (`item-not-found`) already satisfies.
#[derive(Debug)]
pub struct WithdrawFlow {
    audience: Audience,
    state: Withdrawing,
}

impl WithdrawFlow {
    /// The flow for the options of `audience`.
    #[must_use]
    pub fn new(audience: Audience) -> Self {
        Self { audience, state: Withdrawing::Start }
    }

    /// The next step: `answer` is the answer to the last request (`None` at the start), `id` a
    /// fresh IQ id for the request the flow makes.
    pub fn next(&mut self, answer: Option<&Element>, id: &str) -> PepStep {
        match (self.state, answer) {
            (Withdrawing::Start, _) => {
                self.state = Withdrawing::Withdraw;
                PepStep::Request(pep::withdraw(self.audience, id))
            }
            (Withdrawing::Withdraw, Some(r)) if is_result(r) => self.end(PepStep::Done),
            (Withdrawing::Withdraw, _) => {
                self.state = Withdrawing::Delete;
                PepStep::Request(pep::delete_node(self.audience, id))
            }
            (Withdrawing::Delete, Some(r)) if is_result(r) || condition(r) == "item-not-found" => {
                self.end(PepStep::Done)
            }
            (Withdrawing::Delete, r) => self.end(PepStep::Failed {
                condition: r.map_or_else(|| "undefined-condition".into(), condition),
            }),
            (Withdrawing::Ended, _) => PepStep::Done,
        }
    }

    fn end(&mut self, step: PepStep) -> PepStep {
        self.state = Withdrawing::Ended;
        step
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn answer(kind: &str, error: &str) -> Element {
        format!("<iq xmlns='jabber:client' type='{kind}' id='x'>{error}</iq>").parse().unwrap()
    }

    fn ok() -> Element {
        answer("result", "")
    }

    fn refused(cond: &str, extra: &str) -> Element {
        answer(
            "error",
            &format!(
                "<error type='cancel'><{cond} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>{extra}</error>"
            ),
        )
    }

    fn precondition() -> Element {
        refused("conflict", "<precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/>")
    }

    fn iq(name: &str) -> Element {
        format!("<iq xmlns='jabber:client' type='set' id='{name}'/>").parse().unwrap()
    }

    fn set(n: usize) -> Vec<Element> {
        let mut iqs = vec![iq("create")];
        iqs.extend((0..n).map(|i| iq(&format!("publish{i}"))));
        iqs
    }

    fn request_id(s: &PepStep) -> String {
        match s {
            PepStep::Request(e) => e.attr("id").unwrap().to_owned(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn publishing_creates_then_publishes_each_item_whatever_the_creation_says() {
        let mut f = PublishFlow::new(Audience::Subscribers, &set(2));
        assert_eq!(request_id(&f.next(None, "a")), "create");
        assert_eq!(request_id(&f.next(Some(&refused("conflict", "")), "b")), "publish0");
        assert_eq!(request_id(&f.next(Some(&ok()), "c")), "publish1");
        assert_eq!(f.next(Some(&ok()), "d"), PepStep::Done);
    }

    #[test]
    fn a_node_with_another_configuration_is_configured_and_published_again_once() {
        let mut f = PublishFlow::new(Audience::Subscribers, &set(1));
        f.next(None, "a");
        f.next(Some(&ok()), "b");
        let configure = f.next(Some(&precondition()), "cfg");
        match &configure {
            PepStep::Request(e) => {
                assert_eq!(e.attr("id"), Some("cfg"));
                assert!(String::from(e).contains("configure"), "{}", String::from(e));
            }
            other => panic!("{other:?}"),
        }
        // Published again, under a fresh id.
        assert_eq!(request_id(&f.next(Some(&ok()), "again")), "again");
        assert_eq!(f.next(Some(&ok()), "z"), PepStep::Done);

        // A second refusal after the reconfiguration ends it.
        let mut f = PublishFlow::new(Audience::Subscribers, &set(1));
        f.next(None, "a");
        f.next(Some(&ok()), "b");
        f.next(Some(&precondition()), "cfg");
        f.next(Some(&ok()), "again");
        assert_eq!(f.next(Some(&precondition()), "z"), PepStep::Failed { condition: "conflict".into() });

        // The node cannot be configured: the publish's refusal is reported.
        let mut f = PublishFlow::new(Audience::Subscribers, &set(1));
        f.next(None, "a");
        f.next(Some(&ok()), "b");
        f.next(Some(&precondition()), "cfg");
        assert_eq!(
            f.next(Some(&refused("forbidden", "")), "z"),
            PepStep::Failed { condition: "conflict".into() }
        );
    }

    #[test]
    fn any_other_refusal_of_a_publish_ends_the_flow() {
        let mut f = PublishFlow::new(Audience::Subscribers, &set(2));
        f.next(None, "a");
        f.next(Some(&ok()), "b");
        assert_eq!(
            f.next(Some(&refused("resource-constraint", "")), "c"),
            PepStep::Failed { condition: "resource-constraint".into() }
        );
        assert_eq!(f.next(Some(&ok()), "d"), PepStep::Done, "nothing more is sent");
    }

    #[test]
    fn withdrawing_falls_back_to_deleting_the_node() {
        let mut f = WithdrawFlow::new(Audience::Subscribers);
        assert!(
            String::from(&match f.next(None, "w") {
                PepStep::Request(e) => e,
                other => panic!("{other:?}"),
            })
            .contains("<item")
        );
        assert_eq!(f.next(Some(&ok()), "x"), PepStep::Done);

        let mut f = WithdrawFlow::new(Audience::Subscribers);
        f.next(None, "w");
        let delete = f.next(Some(&refused("bad-request", "")), "d");
        assert!(
            String::from(&match delete {
                PepStep::Request(e) => e,
                other => panic!("{other:?}"),
            })
            .contains("delete")
        );
        assert_eq!(f.next(Some(&refused("item-not-found", "")), "x"), PepStep::Done, "no node: withdrawn");

        let mut f = WithdrawFlow::new(Audience::Everyone);
        f.next(None, "w");
        f.next(Some(&refused("bad-request", "")), "d");
        assert_eq!(
            f.next(Some(&refused("forbidden", "")), "x"),
            PepStep::Failed { condition: "forbidden".into() }
        );
    }
}
