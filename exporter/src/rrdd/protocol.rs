//! The xcp-rrdd plugin protocol, version 2: the bytes of a plugin file.
//!
//! A plugin file is one frame, all integers big-endian:
//!
//! | offset      | bytes   | field                                              |
//! |-------------|---------|----------------------------------------------------|
//! | 0           | 11      | `DATASOURCES` (ASCII, no terminator)               |
//! | 11          | 4       | data CRC: CRC-32 of bytes `[23, 31 + 8n)`          |
//! | 15          | 4       | metadata CRC: CRC-32 of the metadata bytes         |
//! | 19          | 4       | `n`, the number of datasources                     |
//! | 23          | 8       | timestamp: an IEEE 754 double, seconds since 1970  |
//! | 31          | 8 × `n` | the values, in metadata order: doubles or `int64`  |
//! | 31 + 8n     | 4       | `m`, the metadata length in bytes                  |
//! | 35 + 8n     | `m`     | the metadata: JSON, `{"datasources": {NAME: {..}}}` |
//!
//! The CRC is the common CRC-32 (IEEE 802.3, zlib's `crc32`). The data CRC
//! covers the timestamp, so it changes at every write; a reader that sees
//! the data CRC it saw last has nothing new to read. A reader re-parses the
//! metadata only when the metadata CRC differs from the last one it
//! accepted, otherwise it reads `n` values with the types it cached.
//!
//! Each datasource's metadata is an object of strings: `description`,
//! `owner` (`host`, `vm <uuid>`, `sr <uuid>`), `value_type` (`float` or
//! `int64`), `type` (`gauge`, `absolute`, `derive`), `default` (`true` or
//! `false`: recorded in the RRD without being asked for), `units`, `min`,
//! `max`. Names repeat across owners (every VM has a `cpu0`), so the
//! metadata object can hold the same key several times: readers keep the
//! pairs in order, and so does [`metadata_json`]. The current value is not
//! part of the metadata here (xcp-rrdd's own writer also puts a rounded
//! `value` there, which readers ignore), so the metadata, and its CRC,
//! change only when the set of datasources does.
//!
//! # Examples
//!
//! ```
//! use vstats_exporter::rrdd::protocol::{encode, Datasource, DsType, DsValue, Owner, HEADER};
//!
//! let ds = Datasource {
//!     name: "cpu0".into(),
//!     description: "CPU0 usage".into(),
//!     owner: Owner::Vm("vm1".into()),
//!     value: DsValue::Float(1.5),
//!     ty: DsType::Derive,
//!     default: true,
//!     units: "(fraction)".into(),
//!     min: 0.0,
//!     max: 1.0,
//! };
//! let frame = encode(1_700_000_000.0, &[ds]).unwrap();
//! assert!(frame.bytes().starts_with(HEADER));
//! assert_eq!(frame.count(), 1);
//! ```

use std::ops::Range;

/// The header: the file's first bytes.
pub const HEADER: &[u8; 11] = b"DATASOURCES";
/// Offset of the data CRC.
pub const DATA_CRC_OFFSET: usize = 11;
/// Offset of the metadata CRC.
pub const METADATA_CRC_OFFSET: usize = 15;
/// Offset of the datasource count.
pub const COUNT_OFFSET: usize = 19;
/// Offset of the timestamp, where the data CRC's span starts.
pub const TIMESTAMP_OFFSET: usize = 23;
/// Offset of the first value.
pub const VALUES_OFFSET: usize = 31;

/// What a frame could not hold.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// More datasources, or more metadata bytes, than a 32-bit field holds.
    #[error("{what} is {len}: more than the protocol's 32-bit field holds")]
    TooLarge {
        /// `"the datasource count"` or `"the metadata length"`.
        what: &'static str,
        /// The size.
        len: usize,
    },
}

/// Whom a datasource describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The host (`host`).
    Host,
    /// A VM, by uuid (or name): `vm <id>`.
    Vm(String),
    /// A storage repository: `sr <uuid>`.
    Sr(String),
}

/// A datasource's value and its type (`value_type`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DsValue {
    /// `float`: an IEEE 754 double.
    Float(f64),
    /// `int64`.
    Int64(i64),
}

/// How xcp-rrdd turns the values into an RRD (`type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DsType {
    /// `gauge`: recorded as is.
    Gauge,
    /// `absolute`: a count since the last reading, divided by the interval.
    Absolute,
    /// `derive`: a cumulative value; xcp-rrdd records its rate.
    Derive,
}

/// One datasource: its metadata and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Datasource {
    /// Its name (`cpu0`); unique per owner.
    pub name: String,
    /// What it measures.
    pub description: String,
    /// Whom it describes.
    pub owner: Owner,
    /// Its value now.
    pub value: DsValue,
    /// How xcp-rrdd records it.
    pub ty: DsType,
    /// Whether xcp-rrdd records it without being asked to.
    pub default: bool,
    /// Its units, as xcp-rrdd spells them (`(fraction)`).
    pub units: String,
    /// The smallest value xcp-rrdd records (after deriving).
    pub min: f64,
    /// The largest value xcp-rrdd records (after deriving).
    pub max: f64,
}

fn json_str(out: &mut String, s: &str) {
    // serde_json's Display of a string is its quoted, escaped JSON form.
    out.push_str(&serde_json::Value::from(s).to_string());
}

/// The metadata of `dss`, in order: `{"datasources":{NAME:{..},..}}`.
/// A name may repeat (one per owner), so this is written pair by pair.
pub fn metadata_json(dss: &[Datasource]) -> String {
    let mut out = String::from("{\"datasources\":{");
    for (i, ds) in dss.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(&mut out, &ds.name);
        out.push(':');
        let owner = match &ds.owner {
            Owner::Host => "host".to_owned(),
            Owner::Vm(id) => format!("vm {id}"),
            Owner::Sr(id) => format!("sr {id}"),
        };
        let value_type = match ds.value {
            DsValue::Float(_) => "float",
            DsValue::Int64(_) => "int64",
        };
        let ty = match ds.ty {
            DsType::Gauge => "gauge",
            DsType::Absolute => "absolute",
            DsType::Derive => "derive",
        };
        let fields: [(&str, &str); 8] = [
            ("description", &ds.description),
            ("owner", &owner),
            ("value_type", value_type),
            ("type", ty),
            ("default", if ds.default { "true" } else { "false" }),
            ("units", &ds.units),
            ("min", &format!("{:.2}", ds.min)),
            ("max", &format!("{:.2}", ds.max)),
        ];
        out.push('{');
        for (j, (k, v)) in fields.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            json_str(&mut out, k);
            out.push(':');
            json_str(&mut out, v);
        }
        out.push('}');
    }
    out.push_str("}}");
    out
}

/// One encoded frame: the whole file's bytes, and where its parts are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    bytes: Vec<u8>,
    count: u32,
    metadata_crc: u32,
}

impl Frame {
    /// The frame's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The number of datasources.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The metadata CRC.
    pub fn metadata_crc(&self) -> u32 {
        self.metadata_crc
    }

    /// The bytes the data CRC covers: the timestamp and the values.
    pub fn data_range(&self) -> Range<usize> {
        TIMESTAMP_OFFSET..VALUES_OFFSET + 8 * self.count as usize
    }

    /// The data CRC's own bytes.
    pub fn data_crc_range(&self) -> Range<usize> {
        DATA_CRC_OFFSET..DATA_CRC_OFFSET + 4
    }

    /// Everything that describes the datasources rather than their
    /// values: header, metadata CRC, count, metadata length and
    /// metadata. Equal in two frames exactly when their metadata CRC,
    /// count and metadata are (the parts a reader caches).
    pub fn layout_key(&self) -> (u32, u32, &[u8]) {
        let end = self.data_range().end;
        (self.metadata_crc, self.count, &self.bytes[end..])
    }
}

/// Encodes `dss` at `timestamp` (seconds since 1970) as one protocol v2
/// frame.
///
/// # Errors
///
/// [`EncodeError::TooLarge`] when the count or the metadata length does
/// not fit 32 bits.
pub fn encode(timestamp: f64, dss: &[Datasource]) -> Result<Frame, EncodeError> {
    let count = u32::try_from(dss.len()).map_err(|_| EncodeError::TooLarge {
        what: "the datasource count",
        len: dss.len(),
    })?;
    let metadata = metadata_json(dss);
    let metadata_len = u32::try_from(metadata.len()).map_err(|_| EncodeError::TooLarge {
        what: "the metadata length",
        len: metadata.len(),
    })?;
    let metadata_crc = crc32fast::hash(metadata.as_bytes());
    let mut bytes = Vec::with_capacity(VALUES_OFFSET + 8 * dss.len() + 4 + metadata.len());
    bytes.extend_from_slice(HEADER);
    bytes.extend_from_slice(&[0; 4]); // data CRC, below
    bytes.extend_from_slice(&metadata_crc.to_be_bytes());
    bytes.extend_from_slice(&count.to_be_bytes());
    bytes.extend_from_slice(&timestamp.to_bits().to_be_bytes());
    for ds in dss {
        let word = match ds.value {
            DsValue::Float(f) => f.to_bits(),
            DsValue::Int64(i) => i as u64,
        };
        bytes.extend_from_slice(&word.to_be_bytes());
    }
    bytes.extend_from_slice(&metadata_len.to_be_bytes());
    bytes.extend_from_slice(metadata.as_bytes());
    let frame_data = TIMESTAMP_OFFSET..VALUES_OFFSET + 8 * dss.len();
    let data_crc = bytes
        .get(frame_data)
        .map(crc32fast::hash)
        .unwrap_or_default();
    if let Some(slot) = bytes.get_mut(DATA_CRC_OFFSET..DATA_CRC_OFFSET + 4) {
        slot.copy_from_slice(&data_crc.to_be_bytes());
    }
    Ok(Frame {
        bytes,
        count,
        metadata_crc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(name: &str, owner: &str, v: f64) -> Datasource {
        Datasource {
            name: name.into(),
            description: format!("{name} \"quoted\""),
            owner: Owner::Vm(owner.into()),
            value: DsValue::Float(v),
            ty: DsType::Derive,
            default: true,
            units: "(fraction)".into(),
            min: 0.0,
            max: 1.0,
        }
    }

    #[test]
    fn layout_follows_the_offsets() {
        let dss = [ds("cpu0", "a", 1.25), ds("cpu0", "b", -2.0)];
        let f = encode(12.5, &dss).unwrap();
        let b = f.bytes();
        assert_eq!(&b[..11], b"DATASOURCES");
        assert_eq!(&b[COUNT_OFFSET..COUNT_OFFSET + 4], &2u32.to_be_bytes());
        assert_eq!(&b[23..31], &12.5f64.to_bits().to_be_bytes());
        assert_eq!(&b[31..39], &1.25f64.to_bits().to_be_bytes());
        assert_eq!(&b[39..47], &(-2.0f64).to_bits().to_be_bytes());
        let m = metadata_json(&dss);
        assert_eq!(&b[47..51], &(m.len() as u32).to_be_bytes());
        assert_eq!(&b[51..], m.as_bytes());
        // zlib's check value for "123456789" pins the CRC variant.
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
        assert_eq!(&b[11..15], &crc32fast::hash(&b[23..47]).to_be_bytes());
        assert_eq!(&b[15..19], &crc32fast::hash(m.as_bytes()).to_be_bytes());
        assert_eq!(f.data_range(), 23..47);
    }

    #[test]
    fn metadata_keeps_repeated_names_in_order_and_escapes() {
        let m = metadata_json(&[ds("cpu0", "a", 0.0), ds("cpu0", "b", 0.0)]);
        assert_eq!(m.matches("\"cpu0\":").count(), 2);
        assert!(m.find("vm a").unwrap() < m.find("vm b").unwrap());
        assert!(m.contains(r#""description":"cpu0 \"quoted\"""#));
        assert!(m.contains(r#""min":"0.00","max":"1.00""#));
        assert!(m.starts_with("{\"datasources\":{") && m.ends_with("}}"));
    }

    #[test]
    fn metadata_ignores_values() {
        let a = encode(1.0, &[ds("cpu0", "a", 1.0)]).unwrap();
        let b = encode(2.0, &[ds("cpu0", "a", 7.0)]).unwrap();
        assert_eq!(a.layout_key(), b.layout_key());
        assert_ne!(a.bytes()[11..15], b.bytes()[11..15]);
        let c = encode(2.0, &[ds("cpu1", "a", 7.0)]).unwrap();
        assert_ne!(a.layout_key(), c.layout_key());
    }

    #[test]
    fn int64_values_are_their_twos_complement() {
        let mut d = ds("n", "a", 0.0);
        d.value = DsValue::Int64(-1);
        let f = encode(0.0, &[d]).unwrap();
        assert_eq!(&f.bytes()[31..39], &[0xff; 8]);
        assert!(metadata_json(&[ds("x", "a", 0.0)]).contains("\"value_type\":\"float\""));
    }
}
