//! The `<c xmlns='http://www.xmpp.org/extensions/xep-0200.html#ns'/>` element (XEP-0200 §7, §14).

use crate::error::{Error, Result};
use esession_crypto::{Profile, mpi};
use minidom::Element;
use std::borrow::Cow;

/// The XEP-0200 namespace.
pub const NS: &str = "http://www.xmpp.org/extensions/xep-0200.html#ns";

/// A parsed `<c/>`: Base64-decoded values, plus the normalized content its MAC covers.
#[derive(Clone)]
pub struct Encrypted {
    /// `<data/>`: m_final (absent for an empty re-key stanza).
    pub data: Option<Vec<u8>>,
    /// `<key/>`: a re-key's new e, §6.1 octets.
    pub key: Option<Vec<u8>>,
    /// `<new/>`: how many of our `<key/>`s the sender had received since its last stanza.
    pub new: Option<u32>,
    /// `<old/>`s: published old MAC keys (ignored on receipt).
    pub old: Vec<Vec<u8>>,
    /// `<mac/>`: a_mac.
    pub mac: Vec<u8>,
    /// m_content as received: the normalized children except `<mac/>`, in received order. For
    /// a `<c/>` built with data, only what follows `<data>`[`Self::data_b64`]`</data>`.
    m_content: Vec<u8>,
    /// The Base64 text of `data` of a `<c/>` being built: the first part of m_content, encoded
    /// once for the MAC and the element, and never copied into a contiguous m_content.
    data_b64: Option<String>,
}

impl PartialEq for Encrypted {
    fn eq(&self, o: &Self) -> bool {
        (&self.data, &self.key, self.new, &self.old, &self.mac, self.m_content())
            == (&o.data, &o.key, o.new, &o.old, &o.mac, o.m_content())
    }
}

impl Eq for Encrypted {}

impl core::fmt::Debug for Encrypted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Encrypted")
            .field("data_len", &self.data.as_ref().map(Vec::len))
            .field("key", &self.key.is_some())
            .field("new", &self.new)
            .field("old", &self.old.len())
            .finish_non_exhaustive()
    }
}

fn text_el(name: &str, text: String) -> Element {
    Element::builder(name, NS).append(text).build()
}

impl Encrypted {
    /// A `<c/>` to send: the children in the canonical order `data`, `key`, `new`, `old`...,
    /// and m_content computed from them (A17). The MAC is filled in by [`Encrypted::set_mac`].
    #[must_use]
    pub fn new(data: Option<Vec<u8>>, key: Option<Vec<u8>>, new: Option<u32>, old: Vec<Vec<u8>>) -> Self {
        // Base64 needs no escaping: `<data>`, the Base64 text and `</data>` are its normalized
        // form, kept apart (see `mac_input`).
        // X200-6-05: m_final goes Base64 encoded in <data/>, also for the cipher none.
        let data_b64 = data.as_deref().map(mpi::b64_encode);
        let mut m_content = String::new();
        if let Some(k) = &key {
            m_content.push_str(&format!("<key>{}</key>", mpi::b64_encode(k)));
        }
        if let Some(n) = new {
            m_content.push_str(&format!("<new>{n}</new>"));
        }
        for o in &old {
            m_content.push_str(&format!("<old>{}</old>", mpi::b64_encode(o)));
        }
        Self { data, key, new, old, mac: Vec::new(), m_content: m_content.into_bytes(), data_b64 }
    }

    /// Sets a_mac.
    pub fn set_mac(&mut self, mac: Vec<u8>) {
        self.mac = mac;
    }

    /// m_content: what a_mac covers (before the counter). Borrowed for a received `<c/>`; for
    /// one being built, concatenated from its parts ([`Self::mac_input`] is what the MAC reads).
    #[must_use]
    pub fn m_content(&self) -> Cow<'_, [u8]> {
        match &self.data_b64 {
            None => Cow::Borrowed(&self.m_content),
            Some(_) => Cow::Owned(self.mac_input().concat()),
        }
    }

    /// m_content in the pieces it is held in, to be MACed without first being copied into one
    /// buffer (a 4 KiB `<data/>` is 5.5 KiB of Base64).
    #[must_use]
    pub fn mac_input(&self) -> [&[u8]; 4] {
        match &self.data_b64 {
            Some(d) => [b"<data>", d.as_bytes(), b"</data>", &self.m_content],
            None => [&[], &[], &[], &self.m_content],
        }
    }

    /// Parses a received `<c/>`; children may come in any order (A17).
    ///
    /// # Errors
    /// [`Error::Malformed`] for a wrong element, unknown or repeated children, text outside the
    /// children, invalid Base64, a `<new/>` that is not a positive integer, or a missing `<mac/>`.
    pub fn parse(profile: Profile, c: &Element) -> Result<Self> {
        if !c.is("c", NS) {
            return Err(Error::Malformed("not a <c/> element"));
        }
        for n in c.nodes() {
            if let minidom::Node::Text(t) = n
                && !t.trim().is_empty()
            {
                return Err(Error::Malformed("text in <c/>"));
            }
        }
        let mut out = Self {
            data: None,
            key: None,
            new: None,
            old: Vec::new(),
            mac: Vec::new(),
            m_content: Vec::new(),
            data_b64: None,
        };
        let mut mac = None;
        // Room for the normalized children (their text plus tags), so m_content grows once.
        let room = c.children().flat_map(Element::texts).map(str::len).sum::<usize>();
        let mut m_content = String::with_capacity(room + 128);
        let b64 = |e: &Element| -> Result<Vec<u8>> {
            if e.children().next().is_some() {
                return Err(Error::Malformed("element inside a <c/> child"));
            }
            // One text node (what a parser gives) is decoded where it is, without a copy.
            let mut texts = e.texts();
            let decoded = match (texts.next(), texts.next()) {
                (Some(t), None) => mpi::b64_decode(t.trim()),
                _ => mpi::b64_decode(e.text().trim()),
            };
            decoded.map_err(|_| Error::Malformed("invalid base64"))
        };
        // X200-6-07: m_content is the children only, normalized: the character data between
        // them (and around <mac/>) is not part of it.
        for child in c.children() {
            if !child.has_ns(NS) {
                return Err(Error::Malformed("foreign element in <c/>"));
            }
            if child.name() != "mac" {
                esession_forms::normalize::element_into(profile, child, &mut m_content)
                    .map_err(|_| Error::Malformed("cannot normalize"))?;
            }
            // X200-8-01: m_final and a_mac are extracted and Base64 decoded.
            match child.name() {
                "data" if out.data.is_none() => out.data = Some(b64(child)?),
                "key" if out.key.is_none() => out.key = Some(b64(child)?),
                "mac" if mac.is_none() => mac = Some(b64(child)?),
                "old" => out.old.push(b64(child)?),
                "new" if out.new.is_none() => {
                    let t = child.text();
                    let canonical = !t.is_empty()
                        && t.len() <= 10
                        && t.bytes().all(|b| b.is_ascii_digit())
                        && !t.starts_with('0');
                    let n: u32 = if canonical {
                        t.parse().map_err(|_| Error::Malformed("<new/> too large"))?
                    } else {
                        0
                    };
                    if n == 0 {
                        return Err(Error::Malformed("<new/> is not a positive integer"));
                    }
                    out.new = Some(n);
                }
                "data" | "key" | "mac" | "new" => return Err(Error::Malformed("repeated child")),
                _ => return Err(Error::Malformed("unknown child")),
            }
        }
        out.mac = mac.ok_or(Error::Malformed("no <mac/>"))?;
        out.m_content = m_content.into_bytes();
        Ok(out)
    }

    /// [`Encrypted::to_element`], moving the Base64 text of `<data/>` instead of copying it.
    #[must_use]
    pub fn into_element(mut self) -> Element {
        let text = self.data_b64.take().or_else(|| self.data.as_deref().map(mpi::b64_encode));
        self.build(text)
    }

    /// The element to send, in the canonical order with `<mac/>` last.
    #[must_use]
    pub fn to_element(&self) -> Element {
        let text = self.data.as_deref().map(|d| self.data_b64.clone().unwrap_or_else(|| mpi::b64_encode(d)));
        self.build(text)
    }

    fn build(&self, data_text: Option<String>) -> Element {
        let mut c = Element::builder("c", NS).build();
        if let Some(text) = data_text {
            c.append_child(text_el("data", text));
        }
        if let Some(k) = &self.key {
            c.append_child(text_el("key", mpi::b64_encode(k)));
        }
        if let Some(n) = self.new {
            c.append_child(text_el("new", n.to_string()));
        }
        for o in &self.old {
            c.append_child(text_el("old", mpi::b64_encode(o)));
        }
        // X200-7-01: the content and the Base64 a_mac in <mac/>, all inside <c/>.
        c.append_child(text_el("mac", mpi::b64_encode(&self.mac)));
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use esession_forms::xml::parse;

    #[test]
    fn any_order_on_receipt_canonical_on_send() {
        let c = parse(&format!(
            "<c xmlns='{NS}'>\n <mac>AQI=</mac>\n <new>2</new>\n <data>AAEC</data>\n <old>BQ==</old></c>"
        ))
        .unwrap();
        let e = Encrypted::parse(Profile::Xep, &c).unwrap();
        assert_eq!(e.data, Some(vec![0, 1, 2]));
        assert_eq!(e.new, Some(2));
        assert_eq!(e.old, vec![vec![5]]);
        assert_eq!(e.mac, vec![1, 2]);
        // m_content keeps the received order, without <mac/> and whitespace.
        assert_eq!(&*e.m_content(), b"<new>2</new><data>AAEC</data><old>BQ==</old>");
        let mut sent = Encrypted::new(e.data.clone(), None, e.new, e.old.clone());
        sent.set_mac(e.mac.clone());
        assert_eq!(&*sent.m_content(), b"<data>AAEC</data><new>2</new><old>BQ==</old>");
        assert_eq!(sent.mac_input().concat(), &*sent.m_content(), "the parts are m_content");
        let back = Encrypted::parse(Profile::Xep, &sent.to_element()).unwrap();
        assert_eq!(back, sent);
        assert_eq!(sent.to_element(), sent.clone().into_element(), "the same element either way");
    }

    #[test]
    fn malformed_elements() {
        for body in [
            "<data>AAEC</data>",
            "<mac>AQI=</mac><mac>AQI=</mac>",
            "<data>AAEC</data><data>AAEC</data><mac>AQI=</mac>",
            "<data>A A</data><mac>AQI=</mac>",
            "<new>0</new><mac>AQI=</mac>",
            "<new>01</new><mac>AQI=</mac>",
            "<new>-1</new><mac>AQI=</mac>",
            "<new>99999999999</new><mac>AQI=</mac>",
            "<bogus/><mac>AQI=</mac>",
            "text<mac>AQI=</mac>",
            "<data><x/></data><mac>AQI=</mac>",
        ] {
            let c = parse(&format!("<c xmlns='{NS}'>{body}</c>")).unwrap();
            assert!(Encrypted::parse(Profile::Xep, &c).is_err(), "{body}");
        }
        let other = parse("<c xmlns='http://jabber.org/protocol/caps'/>").unwrap();
        assert!(Encrypted::parse(Profile::Xep, &other).is_err());
    }

    /// Mutation testing (docs/conformance.md): each child that may come once is refused when
    /// repeated, and said so; `<new/>` takes digits only (Rust's `u32` parse would take `+5`).
    #[test]
    fn repeated_children_and_signed_new_are_refused() {
        for body in [
            "<key>AAEC</key><key>AAEC</key><mac>AQI=</mac>",
            "<new>1</new><new>2</new><mac>AQI=</mac>",
            "<data>AAEC</data><data>AAEC</data><mac>AQI=</mac>",
            "<mac>AQI=</mac><mac>AQI=</mac>",
        ] {
            let c = parse(&format!("<c xmlns='{NS}'>{body}</c>")).unwrap();
            assert_eq!(Encrypted::parse(Profile::Xep, &c), Err(Error::Malformed("repeated child")), "{body}");
        }
        for new in ["+5", " 5", "5 ", "+0"] {
            let c = parse(&format!("<c xmlns='{NS}'><new>{new}</new><mac>AQI=</mac></c>")).unwrap();
            assert_eq!(
                Encrypted::parse(Profile::Xep, &c),
                Err(Error::Malformed("<new/> is not a positive integer")),
                "{new:?}"
            );
        }
        let c = parse(&format!("<c xmlns='{NS}'><key>AAEC</key><new>4294967295</new><mac>AQI=</mac></c>"))
            .unwrap();
        let e = Encrypted::parse(Profile::Xep, &c).unwrap();
        assert_eq!((e.key.as_deref(), e.new), (Some(&[0u8, 1, 2][..]), Some(u32::MAX)));
    }

    /// Two `<c/>`s differing only in a_mac, or only in m_content, are not equal; `Debug` shows
    /// lengths and presence, never the values.
    #[test]
    fn equality_compares_every_part_and_debug_shows_no_values() {
        let mut a = Encrypted::new(Some(vec![7; 3]), None, Some(1), vec![]);
        a.set_mac(vec![1, 2]);
        let mut b = a.clone();
        b.set_mac(vec![1, 3]);
        assert_ne!(a, b);
        let mut c = Encrypted::new(Some(vec![7; 3]), None, Some(2), vec![]);
        c.set_mac(vec![1, 2]);
        assert_ne!(a, c);
        assert_eq!(format!("{a:?}"), "Encrypted { data_len: Some(3), key: false, new: Some(1), old: 0, .. }");
    }
}
