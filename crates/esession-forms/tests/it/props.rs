//! Property tests: arbitrary typed forms round-trip through Element and through text, and
//! normalization is invariant under re-serialization (attribute order, quotes, whitespace).

use esession_crypto::Profile;
use esession_forms::dataform::{DataForm, Field, FieldType, FormOption, FormType};
use esession_forms::normalize::form_content;
use minidom::Element;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    // Printable text with the characters escaping cares about.
    proptest::string::string_regex("[a-zA-Z0-9 <>&\"'=#:/._-]{0,12}").unwrap()
}

fn field() -> impl Strategy<Value = Field> {
    (
        proptest::string::string_regex("[a-z_#]{1,8}").unwrap(),
        proptest::sample::select(FieldType::ALL.to_vec()),
        proptest::option::of(text()),
        any::<bool>(),
        proptest::collection::vec(text(), 0..3),
        proptest::collection::vec((proptest::option::of(text()), text()), 0..3),
    )
        .prop_map(|(var, t, label, required, mut values, options)| {
            if !t.is_multi() {
                values.truncate(1);
            }
            if t == FieldType::Boolean {
                values = values
                    .iter()
                    .map(|v| if v.len() % 2 == 0 { "1".to_owned() } else { "false".to_owned() })
                    .collect();
            }
            let options = if t.is_list() {
                options.into_iter().map(|(label, value)| FormOption { label, value }).collect()
            } else {
                Vec::new()
            };
            Field { var: Some(var), type_: Some(t), label, desc: None, required, values, options }
        })
}

fn form() -> impl Strategy<Value = DataForm> {
    (
        proptest::sample::select(vec![FormType::Form, FormType::Submit, FormType::Result]),
        proptest::collection::vec(field(), 0..6),
    )
        .prop_map(|(t, fields)| {
            let mut seen = std::collections::HashSet::new();
            let fields = fields.into_iter().filter(|f| seen.insert(f.var.clone())).collect();
            DataForm { type_: t, title: None, instructions: Vec::new(), fields }
        })
}

/// Re-serializes an element differently: single quotes, reversed attribute order, whitespace
/// between elements, a namespace prefix.
fn reserialize(e: &Element, prefix: bool) -> String {
    fn esc(s: &str) -> String {
        s.replace('&', "&amp;").replace('<', "&lt;").replace('\'', "&apos;")
    }
    fn go(e: &Element, root: bool, prefix: bool, out: &mut String) {
        let name = if prefix { format!("p:{}", e.name()) } else { e.name().to_owned() };
        out.push_str(&format!("\n <{name}"));
        if root {
            out.push_str(if prefix { " xmlns:p='jabber:x:data'" } else { " xmlns='jabber:x:data'" });
        }
        let mut attrs: Vec<(String, String)> =
            e.attrs().iter().map(|((_, n), v)| (n.as_str().to_owned(), v.clone())).collect();
        attrs.reverse();
        for (n, v) in attrs {
            out.push_str(&format!("  {n}='{}'", esc(&v)));
        }
        out.push('>');
        if e.children().next().is_some() {
            for c in e.children() {
                go(c, false, prefix, out);
            }
            out.push_str("\n  ");
        } else {
            out.push_str(&esc(&e.text()).replace('>', "&gt;"));
        }
        out.push_str(&format!("</{name}>"));
    }
    let mut out = String::new();
    go(e, true, prefix, &mut out);
    out.trim_start().to_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn data_forms_round_trip(f in form()) {
        let e = Element::from(&f);
        prop_assert_eq!(&DataForm::parse(&e).unwrap(), &f);
        let text = String::from(&e);
        let back = DataForm::parse(&esession_forms::xml::parse(&text).unwrap()).unwrap();
        prop_assert_eq!(&back, &f);
        let gajim_layout = f.to_element_with(true);
        prop_assert_eq!(&DataForm::parse(&gajim_layout).unwrap(), &f);
    }

    #[test]
    fn normalization_ignores_serialization(f in form(), prefix in any::<bool>()) {
        let e = Element::from(&f);
        let other = esession_forms::xml::parse(&reserialize(&e, prefix)).unwrap();
        for p in [Profile::Xep, Profile::Gajim] {
            prop_assert_eq!(form_content(p, &e, &[]).unwrap(), form_content(p, &other, &[]).unwrap());
        }
    }
}
