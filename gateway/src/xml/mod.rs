//! S3 XML bodies: response documents the gateway renders and request documents it parses.
//!
//! Element names and order follow the AWS S3 API reference and what S3 itself sends. Response
//! roots carry `xmlns="http://s3.amazonaws.com/doc/2006-03-01/"` through an [`Xmlns`] field;
//! request parsers accept the namespace (or none), ignore unknown elements, and check the root
//! element's name.
//!
//! Render with [`to_xml`], parse with [`from_xml`], and render an `<Error>` with [`error_xml`].
//! Optional fields (`Option`) are omitted when `None`; empty `Vec`s produce no elements.

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::S3Error;

mod cors;
mod lifecycle;
mod request;
mod response;
mod tagging;
#[cfg(test)]
mod tests;
mod website;

pub use cors::*;
pub use lifecycle::*;
pub use request::*;
pub use response::*;
pub use tagging::*;
pub use website::*;

/// The S3 XML namespace put on every response root element.
pub const S3_XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
/// The XML Schema instance namespace used by ACL `<Grantee>` elements.
pub const XSI_XMLNS: &str = "http://www.w3.org/2001/XMLSchema-instance";

const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// Serializes `root_value` to a complete XML document: the `<?xml ...?>` declaration, a newline
/// (as S3 sends it), then the root element named after the type (its `serde(rename)`).
pub fn to_xml<T: Serialize>(root_value: &T) -> String {
    let mut out = String::from(XML_DECLARATION);
    match quick_xml::se::to_writer(&mut out, root_value) {
        Ok(_) => out,
        Err(e) => {
            // Only reachable through a type that cannot be expressed as XML, a programming error
            // `tests.rs` rules out for every type in this module.
            tracing::error!(error = %e, "failed to serialize an XML response");
            error_xml(
                "InternalError",
                "We encountered an internal error. Please try again.",
                "",
                "",
                &[],
            )
        }
    }
}

/// Parses a request body. Any problem (not UTF-8, not well-formed, a root element other than the
/// one `T` is named after, a missing required element, a bad number) is
/// [`S3Error::MalformedXML`]. An empty body is malformed too; handlers for which the body is
/// optional (CreateBucket) must check for emptiness first.
pub fn from_xml<T: DeserializeOwned>(body: &[u8]) -> Result<T, S3Error> {
    let text = std::str::from_utf8(body).map_err(|_| S3Error::MalformedXML)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root = well_formed_root(text).ok_or(S3Error::MalformedXML)?;
    if let Some(expected) = struct_name::<T>()
        && root != expected
    {
        return Err(S3Error::MalformedXML);
    }
    quick_xml::de::from_str(text).map_err(|e| {
        tracing::debug!(error = %e, "malformed XML request body");
        S3Error::MalformedXML
    })
}

/// Renders an S3 error document (no namespace, as S3 sends it):
/// `<Error><Code/><Message/><Resource/><RequestId/>` followed by one element per `extra` pair,
/// e.g. `("BucketName", "b")` or `("Key", "k")`. Values are XML-escaped; names must be valid
/// element names.
pub fn error_xml(
    code: &str,
    message: &str,
    resource: &str,
    request_id: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(XML_DECLARATION);
    out.push_str("<Error>");
    for (name, value) in [
        ("Code", code),
        ("Message", message),
        ("Resource", resource),
        ("RequestId", request_id),
    ]
    .iter()
    .chain(extra)
    {
        debug_assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()),
            "invalid element name {name:?}"
        );
        out.push('<');
        out.push_str(name);
        out.push('>');
        out.push_str(&quick_xml::escape::partial_escape(*value));
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    }
    out.push_str("</Error>");
    out
}

/// Formats milliseconds since the Unix epoch as S3 does in XML: `2009-10-12T17:50:30.000Z`.
/// Out-of-range values clamp to the epoch.
pub fn s3_timestamp(ms_since_epoch: i64) -> String {
    use chrono::{Datelike, Timelike};
    // Formatted field by field: a listing renders one per key, and chrono's `format` parses
    // its pattern on every call.
    let t = chrono::DateTime::from_timestamp_millis(ms_since_epoch).unwrap_or_default();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.timestamp_subsec_millis()
    )
}

/// Checks that `text` is one well-formed element (plus prolog, comments and whitespace) and
/// returns the root element's local name. DTDs are refused.
fn well_formed_root(text: &str) -> Option<String> {
    use quick_xml::events::{BytesStart, Event};
    fn set_root(root: &mut Option<String>, e: &BytesStart<'_>) -> Option<()> {
        if root.is_some() {
            return None; // a second root element
        }
        *root = Some(e.local_name().into_inner().to_owned());
        Some(())
    }
    let mut reader = quick_xml::Reader::from_str(text);
    let mut depth = 0usize;
    let mut root = None;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                if depth == 0 {
                    set_root(&mut root, &e)?;
                }
                depth += 1;
            }
            Event::Empty(e) if depth == 0 => set_root(&mut root, &e)?,
            Event::End(_) => depth = depth.checked_sub(1)?,
            Event::Text(t) if depth == 0 && !t.as_ref().trim_ascii().is_empty() => return None,
            Event::CData(_) | Event::GeneralRef(_) if depth == 0 => return None,
            Event::DocType(_) => return None,
            Event::Eof => return if depth == 0 { root } else { None },
            _ => {}
        }
    }
}

/// The name `T`'s derived `Deserialize` passes to `deserialize_struct`, i.e. the expected root
/// element; `None` when `T` is not a struct.
fn struct_name<T: DeserializeOwned>() -> Option<&'static str> {
    let mut name = None;
    let _ = T::deserialize(StructNameProbe(&mut name));
    name
}

/// A deserializer that only records the struct name it is asked for, then fails.
struct StructNameProbe<'a>(&'a mut Option<&'static str>);

impl<'de> Deserializer<'de> for StructNameProbe<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(name);
        Err(serde::de::Error::custom("probe"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// The `xmlns="http://s3.amazonaws.com/doc/2006-03-01/"` attribute of a response root. A unit
/// value: write `xmlns: Xmlns` (or rely on `..Default::default()`). Parsing accepts any value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Xmlns;

impl Serialize for Xmlns {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(S3_XMLNS)
    }
}

impl<'de> Deserialize<'de> for Xmlns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Xmlns)
    }
}

/// The `xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"` attribute of a `<Grantee>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XsiXmlns;

impl Serialize for XsiXmlns {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(XSI_XMLNS)
    }
}

impl<'de> Deserialize<'de> for XsiXmlns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| XsiXmlns)
    }
}
