//! A minimal, synchronous D-Bus client: enough to ask systemd for transient units.
//!
//! It owns the wire format (marshalling and unmarshalling of every basic and container
//! type, message headers), the SASL `EXTERNAL` handshake, and one blocking connection
//! over a unix socket that sends method calls, waits for their replies with a deadline,
//! and keeps the signals that arrive meanwhile for whoever waits for them next.
//! kraal is single-threaded: nothing here spawns a thread or needs an async runtime.
//!
//! Reference: the D-Bus specification, sections "Message Protocol" (marshalling,
//! header fields) and "Authentication Protocol".

use anyhow::{anyhow, bail, Context, Result};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The bus daemon's own name, object and interface (Hello, AddMatch).
pub const BUS_NAME: &str = "org.freedesktop.DBus";
pub const BUS_PATH: &str = "/org/freedesktop/DBus";
pub const BUS_INTERFACE: &str = "org.freedesktop.DBus";

/// Where the system bus listens when `DBUS_SYSTEM_BUS_ADDRESS` is unset.
pub const SYSTEM_BUS_DEFAULT: &str = "unix:path=/run/dbus/system_bus_socket";

/// The specification's limits: a message of at most 128 MiB, an array of 64 MiB,
/// a signature of 255 bytes, containers nested 32 deep (arrays and structs each).
const MAX_MESSAGE: usize = 128 << 20;
const MAX_ARRAY: usize = 64 << 20;
const MAX_SIGNATURE: usize = 255;
const MAX_DEPTH: usize = 64;

/// How long a method call may take before kraal gives up (the reference
/// implementation's default is 25 s).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(25);

/// Signals kept while waiting for a reply; older ones are dropped beyond this.
const MAX_QUEUED: usize = 4096;

/// One D-Bus value, with enough type information to marshal it (an empty array
/// still knows its element type).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    ObjectPath(String),
    Signature(String),
    /// An index into the message's file descriptors (kraal never negotiates any).
    UnixFd(u32),
    Variant(Box<Value>),
    /// The element signature, then the elements (each of that type).
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    DictEntry(Box<Value>, Box<Value>),
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(s.to_string())
    }

    pub fn variant(v: Value) -> Value {
        Value::Variant(Box::new(v))
    }

    /// The value's type signature (one complete type).
    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I16(_) => "n".into(),
            Value::U16(_) => "q".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::F64(_) => "d".into(),
            Value::Str(_) => "s".into(),
            Value::ObjectPath(_) => "o".into(),
            Value::Signature(_) => "g".into(),
            Value::UnixFd(_) => "h".into(),
            Value::Variant(_) => "v".into(),
            Value::Array(elem, _) => format!("a{elem}"),
            Value::Struct(fields) => {
                let inner: String = fields.iter().map(Value::signature).collect();
                format!("({inner})")
            }
            Value::DictEntry(k, v) => format!("{{{}{}}}", k.signature(), v.signature()),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::ObjectPath(s) | Value::Signature(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u32(&self) -> Option<u32> {
        match self {
            Value::U32(v) => Some(*v),
            _ => None,
        }
    }

    /// The value inside a variant (or the value itself).
    pub fn inner(&self) -> &Value {
        match self {
            Value::Variant(v) => v.inner(),
            v => v,
        }
    }
}

/// The signature of a sequence of values (a message body).
pub fn signature_of(values: &[Value]) -> String {
    values.iter().map(Value::signature).collect()
}

/// Alignment of a type, by the first character of its signature.
fn alignment(code: u8) -> usize {
    match code {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 4,
    }
}

/// Splits the first complete type off `sig`; returns it and the rest.
pub fn first_type(sig: &str) -> Result<(&str, &str)> {
    let b = sig.as_bytes();
    let end = complete_type_end(b, 0, 0, false).with_context(|| format!("signature {sig:?}"))?;
    Ok((&sig[..end], &sig[end..]))
}

/// Splits a signature into its complete types.
pub fn split_signature(sig: &str) -> Result<Vec<&str>> {
    if sig.len() > MAX_SIGNATURE {
        bail!("signature {sig:?}: longer than {MAX_SIGNATURE} bytes");
    }
    let mut out = Vec::new();
    let mut rest = sig;
    while !rest.is_empty() {
        let (t, r) = first_type(rest)?;
        out.push(t);
        rest = r;
    }
    Ok(out)
}

/// The index just past the complete type starting at `i`. `in_array` allows a dict
/// entry, which may only appear as an array's element type.
fn complete_type_end(b: &[u8], i: usize, depth: usize, in_array: bool) -> Result<usize> {
    if depth > MAX_DEPTH {
        bail!("nested too deeply");
    }
    let Some(&c) = b.get(i) else {
        bail!("a complete type is missing");
    };
    match c {
        b'y' | b'b' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'd' | b's' | b'o' | b'g'
        | b'h' | b'v' => Ok(i + 1),
        b'a' => complete_type_end(b, i + 1, depth + 1, true),
        b'(' => {
            let mut j = i + 1;
            if b.get(j) == Some(&b')') {
                bail!("an empty struct");
            }
            while b.get(j) != Some(&b')') {
                j = complete_type_end(b, j, depth + 1, false)?;
            }
            Ok(j + 1)
        }
        b'{' => {
            if !in_array {
                bail!("a dict entry outside an array");
            }
            let k = *b
                .get(i + 1)
                .ok_or_else(|| anyhow!("an unterminated dict entry"))?;
            if !b"ybnqiuxtdsogh".contains(&k) {
                bail!("a dict entry key that is not a basic type");
            }
            let j = complete_type_end(b, i + 2, depth + 1, false)?;
            if b.get(j) != Some(&b'}') {
                bail!("a dict entry without exactly one key and one value");
            }
            Ok(j + 1)
        }
        other => bail!("unknown type code {:?}", other as char),
    }
}

/// True when `elem` is exactly one complete type that may be an array's element
/// (dict entries included).
fn is_element_type(elem: &str) -> bool {
    !elem.is_empty() && complete_type_end(elem.as_bytes(), 0, 0, true).ok() == Some(elem.len())
}

fn valid_object_path(p: &str) -> bool {
    if p == "/" {
        return true;
    }
    let Some(rest) = p.strip_prefix('/') else {
        return false;
    };
    rest.split('/')
        .all(|seg| !seg.is_empty() && seg.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'))
}

/// Marshals values in little-endian order. Offsets are relative to the start of the
/// buffer, which must sit at an 8-aligned position of the message (the header and the
/// body both do).
#[derive(Default)]
pub struct Encoder {
    pub buf: Vec<u8>,
    depth: usize,
}

impl Encoder {
    fn pad(&mut self, align: usize) {
        while self.buf.len() % align != 0 {
            self.buf.push(0);
        }
    }

    fn u32_at(&mut self, pos: usize, v: u32) {
        self.buf[pos..pos + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn string(&mut self, s: &str) -> Result<()> {
        if s.contains('\0') {
            bail!("string {s:?} contains a NUL byte");
        }
        self.pad(4);
        self.buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    fn sig(&mut self, s: &str) -> Result<()> {
        split_signature(s)?;
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    pub fn put(&mut self, v: &Value) -> Result<()> {
        if self.depth > MAX_DEPTH {
            bail!("value nested too deeply");
        }
        match v {
            Value::Byte(x) => self.buf.push(*x),
            Value::Bool(x) => self.fixed(4, &u32::from(*x).to_le_bytes()),
            Value::I16(x) => self.fixed(2, &x.to_le_bytes()),
            Value::U16(x) => self.fixed(2, &x.to_le_bytes()),
            Value::I32(x) => self.fixed(4, &x.to_le_bytes()),
            Value::U32(x) | Value::UnixFd(x) => self.fixed(4, &x.to_le_bytes()),
            Value::I64(x) => self.fixed(8, &x.to_le_bytes()),
            Value::U64(x) => self.fixed(8, &x.to_le_bytes()),
            Value::F64(x) => self.fixed(8, &x.to_le_bytes()),
            Value::Str(s) => self.string(s)?,
            Value::ObjectPath(p) => {
                if !valid_object_path(p) {
                    bail!("{p:?} is not a valid object path");
                }
                self.string(p)?
            }
            Value::Signature(s) => self.sig(s)?,
            Value::Variant(inner) => {
                let s = inner.signature();
                if split_signature(&s)?.len() != 1 {
                    bail!("a variant must hold exactly one complete type, not {s:?}");
                }
                self.sig(&s)?;
                self.nested(inner)?;
            }
            Value::Array(elem, items) => {
                if !is_element_type(elem) {
                    bail!("array element signature {elem:?} is not one complete type");
                }
                self.pad(4);
                let len_pos = self.buf.len();
                self.buf.extend_from_slice(&[0; 4]);
                // Padding to the first element is not part of the array's length.
                self.pad(alignment(elem.as_bytes()[0]));
                let start = self.buf.len();
                for it in items {
                    let s = it.signature();
                    if s != *elem {
                        bail!("array of {elem:?} holds an element of type {s:?}");
                    }
                    self.nested(it)?;
                }
                let len = self.buf.len() - start;
                if len > MAX_ARRAY {
                    bail!("array of {len} bytes exceeds the {MAX_ARRAY}-byte limit");
                }
                self.u32_at(len_pos, len as u32);
            }
            Value::Struct(fields) => {
                if fields.is_empty() {
                    bail!("a struct must have at least one field");
                }
                self.pad(8);
                for f in fields {
                    self.nested(f)?;
                }
            }
            Value::DictEntry(k, val) => {
                self.pad(8);
                self.nested(k)?;
                self.nested(val)?;
            }
        }
        Ok(())
    }

    fn fixed(&mut self, align: usize, bytes: &[u8]) {
        self.pad(align);
        self.buf.extend_from_slice(bytes);
    }

    fn nested(&mut self, v: &Value) -> Result<()> {
        self.depth += 1;
        let r = self.put(v);
        self.depth -= 1;
        r
    }
}

/// Unmarshals values of a known signature, in either byte order.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pub pos: usize,
    big_endian: bool,
    depth: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8], big_endian: bool) -> Decoder<'a> {
        Decoder {
            buf,
            pos: 0,
            big_endian,
            depth: 0,
        }
    }

    fn align(&mut self, a: usize) -> Result<()> {
        let next = self.pos.next_multiple_of(a);
        if next > self.buf.len() {
            bail!("message truncated (padding at offset {})", self.pos);
        }
        if self.buf[self.pos..next].iter().any(|&b| b != 0) {
            bail!("non-zero padding at offset {}", self.pos);
        }
        self.pos = next;
        Ok(())
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.align(N.max(1))?;
        let end = self.pos + N;
        let b = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| anyhow!("message truncated at offset {}", self.pos))?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        if self.big_endian {
            out.reverse();
        }
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take::<4>()?))
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| anyhow!("message truncated at offset {}", self.pos))?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn string(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        let b = self.bytes(n)?;
        if self.bytes(1)? != [0] {
            bail!("string at offset {} is not NUL-terminated", self.pos);
        }
        let s = std::str::from_utf8(b).map_err(|_| anyhow!("string is not UTF-8"))?;
        if s.contains('\0') {
            bail!("string contains a NUL byte");
        }
        Ok(s.to_string())
    }

    fn sig(&mut self) -> Result<String> {
        let n = self.bytes(1)?[0] as usize;
        let b = self.bytes(n)?;
        if self.bytes(1)? != [0] {
            bail!("signature is not NUL-terminated");
        }
        let s = std::str::from_utf8(b).map_err(|_| anyhow!("signature is not ASCII"))?;
        split_signature(s)?;
        Ok(s.to_string())
    }

    /// Reads one value of the complete type `sig`.
    pub fn get(&mut self, sig: &str) -> Result<Value> {
        if self.depth == 0 && !first_type(sig)?.1.is_empty() {
            bail!("signature {sig:?} is not one complete type");
        }
        if self.depth > MAX_DEPTH {
            bail!("value nested too deeply");
        }
        self.depth += 1;
        let r = self.get_inner(sig);
        self.depth -= 1;
        r
    }

    fn get_inner(&mut self, sig: &str) -> Result<Value> {
        let code = *sig
            .as_bytes()
            .first()
            .ok_or_else(|| anyhow!("empty signature"))?;
        Ok(match code {
            b'y' => Value::Byte(self.take::<1>()?[0]),
            b'b' => match self.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                n => bail!("boolean with value {n}"),
            },
            b'n' => Value::I16(i16::from_le_bytes(self.take()?)),
            b'q' => Value::U16(u16::from_le_bytes(self.take()?)),
            b'i' => Value::I32(i32::from_le_bytes(self.take()?)),
            b'u' => Value::U32(self.u32()?),
            b'h' => Value::UnixFd(self.u32()?),
            b'x' => Value::I64(i64::from_le_bytes(self.take()?)),
            b't' => Value::U64(u64::from_le_bytes(self.take()?)),
            b'd' => Value::F64(f64::from_le_bytes(self.take()?)),
            b's' => Value::Str(self.string()?),
            b'o' => {
                let p = self.string()?;
                if !valid_object_path(&p) {
                    bail!("{p:?} is not a valid object path");
                }
                Value::ObjectPath(p)
            }
            b'g' => Value::Signature(self.sig()?),
            b'v' => {
                let s = self.sig()?;
                let (t, rest) = first_type(&s)?;
                if !rest.is_empty() {
                    bail!("variant signature {s:?} is not one complete type");
                }
                Value::Variant(Box::new(self.get(t)?))
            }
            b'a' => {
                let elem = &sig[1..];
                if !is_element_type(elem) {
                    bail!("array element signature {elem:?} is not one complete type");
                }
                let len = self.u32()? as usize;
                if len > MAX_ARRAY {
                    bail!("array of {len} bytes exceeds the {MAX_ARRAY}-byte limit");
                }
                self.align(alignment(elem.as_bytes()[0]))?;
                let end = self.pos + len;
                if end > self.buf.len() {
                    bail!("array runs past the end of the message");
                }
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.get(elem)?);
                }
                if self.pos != end {
                    bail!("array elements overrun the array's length");
                }
                Value::Array(elem.to_string(), items)
            }
            b'(' => {
                self.align(8)?;
                let inner = &sig[1..sig.len() - 1];
                let mut fields = Vec::new();
                for t in split_signature(inner)? {
                    fields.push(self.get(t)?);
                }
                Value::Struct(fields)
            }
            b'{' => {
                self.align(8)?;
                let inner = &sig[1..sig.len() - 1];
                let (k, v) = first_type(inner)?;
                Value::DictEntry(Box::new(self.get(k)?), Box::new(self.get(v)?))
            }
            c => bail!("unknown type code {:?}", c as char),
        })
    }
}

/// The four kinds of message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    MethodCall = 1,
    MethodReturn = 2,
    Error = 3,
    Signal = 4,
}

/// Header flag: the sender does not want a reply.
pub const NO_REPLY_EXPECTED: u8 = 0x1;

/// Header field codes.
const F_PATH: u8 = 1;
const F_INTERFACE: u8 = 2;
const F_MEMBER: u8 = 3;
const F_ERROR_NAME: u8 = 4;
const F_REPLY_SERIAL: u8 = 5;
const F_DESTINATION: u8 = 6;
const F_SENDER: u8 = 7;
const F_SIGNATURE: u8 = 8;
const F_UNIX_FDS: u8 = 9;

/// One message, with the header fields kraal uses.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub kind: Kind,
    pub flags: u8,
    pub serial: u32,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub reply_serial: Option<u32>,
    pub destination: Option<String>,
    pub sender: Option<String>,
    pub body: Vec<Value>,
}

impl Message {
    fn empty(kind: Kind) -> Message {
        Message {
            kind,
            flags: 0,
            serial: 0,
            path: None,
            interface: None,
            member: None,
            error_name: None,
            reply_serial: None,
            destination: None,
            sender: None,
            body: Vec::new(),
        }
    }

    pub fn method_call(
        destination: Option<&str>,
        path: &str,
        interface: &str,
        member: &str,
        body: Vec<Value>,
    ) -> Message {
        Message {
            path: Some(path.to_string()),
            interface: Some(interface.to_string()),
            member: Some(member.to_string()),
            destination: destination.map(String::from),
            body,
            ..Message::empty(Kind::MethodCall)
        }
    }

    pub fn signal(path: &str, interface: &str, member: &str, body: Vec<Value>) -> Message {
        Message {
            path: Some(path.to_string()),
            interface: Some(interface.to_string()),
            member: Some(member.to_string()),
            body,
            ..Message::empty(Kind::Signal)
        }
    }

    pub fn method_return(reply_serial: u32, body: Vec<Value>) -> Message {
        Message {
            reply_serial: Some(reply_serial),
            body,
            ..Message::empty(Kind::MethodReturn)
        }
    }

    pub fn error(reply_serial: u32, name: &str, text: &str) -> Message {
        Message {
            reply_serial: Some(reply_serial),
            error_name: Some(name.to_string()),
            body: vec![Value::str(text)],
            ..Message::empty(Kind::Error)
        }
    }

    /// The body's signature.
    pub fn signature(&self) -> String {
        signature_of(&self.body)
    }

    /// `interface.member`, for messages about calls and signals.
    pub fn name(&self) -> String {
        format!(
            "{}.{}",
            self.interface.as_deref().unwrap_or("?"),
            self.member.as_deref().unwrap_or("?")
        )
    }

    /// Marshals the message (little-endian) with the given serial.
    pub fn encode(&self, serial: u32) -> Result<Vec<u8>> {
        if serial == 0 {
            bail!("a message serial must not be 0");
        }
        let need = |f: &Option<String>, what: &str| -> Result<()> {
            if f.is_none() {
                bail!("a {:?} message needs a {what}", self.kind);
            }
            Ok(())
        };
        match self.kind {
            Kind::MethodCall => {
                need(&self.path, "path")?;
                need(&self.member, "member")?;
            }
            Kind::Signal => {
                need(&self.path, "path")?;
                need(&self.interface, "interface")?;
                need(&self.member, "member")?;
            }
            Kind::Error => need(&self.error_name, "error name")?,
            Kind::MethodReturn => {}
        }
        if matches!(self.kind, Kind::Error | Kind::MethodReturn) && self.reply_serial.is_none() {
            bail!("a {:?} message needs a reply serial", self.kind);
        }

        let mut body = Encoder::default();
        for v in &self.body {
            body.put(v)?;
        }
        let sig = self.signature();
        split_signature(&sig)?;

        let mut fields = Vec::new();
        let mut field = |code: u8, v: Value| {
            fields.push(Value::Struct(vec![Value::Byte(code), Value::variant(v)]));
        };
        if let Some(p) = &self.path {
            field(F_PATH, Value::ObjectPath(p.clone()));
        }
        if let Some(i) = &self.interface {
            field(F_INTERFACE, Value::Str(i.clone()));
        }
        if let Some(m) = &self.member {
            field(F_MEMBER, Value::Str(m.clone()));
        }
        if let Some(e) = &self.error_name {
            field(F_ERROR_NAME, Value::Str(e.clone()));
        }
        if let Some(r) = self.reply_serial {
            field(F_REPLY_SERIAL, Value::U32(r));
        }
        if let Some(d) = &self.destination {
            field(F_DESTINATION, Value::Str(d.clone()));
        }
        if let Some(s) = &self.sender {
            field(F_SENDER, Value::Str(s.clone()));
        }
        if !sig.is_empty() {
            field(F_SIGNATURE, Value::Signature(sig));
        }

        let mut out = Encoder::default();
        out.buf
            .extend_from_slice(&[b'l', self.kind as u8, self.flags, 1]);
        out.buf
            .extend_from_slice(&(body.buf.len() as u32).to_le_bytes());
        out.buf.extend_from_slice(&serial.to_le_bytes());
        out.put(&Value::Array("(yv)".into(), fields))?;
        out.pad(8);
        out.buf.extend_from_slice(&body.buf);
        if out.buf.len() > MAX_MESSAGE {
            bail!("message of {} bytes exceeds the D-Bus limit", out.buf.len());
        }
        Ok(out.buf)
    }

    /// The total length of the message whose first 16 bytes are `head`.
    pub fn frame_len(head: &[u8]) -> Result<usize> {
        if head.len() < 16 {
            bail!("a message header needs 16 bytes");
        }
        let big = match head[0] {
            b'l' => false,
            b'B' => true,
            c => bail!("unknown byte order marker {c:#04x}"),
        };
        let word = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&head[i..i + 4]);
            if big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let body = word(4) as usize;
        let fields = word(12) as usize;
        let total = (16usize + fields)
            .checked_next_multiple_of(8)
            .and_then(|h| h.checked_add(body))
            .ok_or_else(|| anyhow!("message length overflows"))?;
        if total > MAX_MESSAGE {
            bail!("message of {total} bytes exceeds the D-Bus limit");
        }
        Ok(total)
    }

    /// Unmarshals one whole message.
    pub fn decode(buf: &[u8]) -> Result<Message> {
        let total = Message::frame_len(buf)?;
        if buf.len() != total {
            bail!("message is {} bytes, its header says {total}", buf.len());
        }
        let big = buf[0] == b'B';
        let kind = match buf[1] {
            1 => Kind::MethodCall,
            2 => Kind::MethodReturn,
            3 => Kind::Error,
            4 => Kind::Signal,
            t => bail!("unknown message type {t}"),
        };
        if buf[3] != 1 {
            bail!("unsupported protocol version {}", buf[3]);
        }
        let mut d = Decoder::new(buf, big);
        d.pos = 4;
        let body_len = d.u32()? as usize;
        let serial = d.u32()?;
        if serial == 0 {
            bail!("message with serial 0");
        }
        let fields = d.get("a(yv)")?;
        d.align(8)?;
        let body_start = d.pos;
        if body_start + body_len != total {
            bail!("header and body lengths disagree");
        }
        let mut m = Message::empty(kind);
        m.flags = buf[2];
        m.serial = serial;
        let mut sig = String::new();
        let mut n_fds = 0;
        let Value::Array(_, fields) = fields else {
            bail!("malformed header fields");
        };
        for f in fields {
            let Value::Struct(pair) = f else {
                bail!("malformed header field");
            };
            let (Some(Value::Byte(code)), Some(v)) = (pair.first(), pair.get(1)) else {
                bail!("malformed header field");
            };
            let v = v.inner();
            let text = || v.as_str().map(String::from);
            let bad = |what: &str| anyhow!("header field {what} has the wrong type");
            match *code {
                F_PATH => m.path = Some(text().ok_or_else(|| bad("PATH"))?),
                F_INTERFACE => m.interface = Some(text().ok_or_else(|| bad("INTERFACE"))?),
                F_MEMBER => m.member = Some(text().ok_or_else(|| bad("MEMBER"))?),
                F_ERROR_NAME => m.error_name = Some(text().ok_or_else(|| bad("ERROR_NAME"))?),
                F_REPLY_SERIAL => {
                    m.reply_serial = Some(v.as_u32().ok_or_else(|| bad("REPLY_SERIAL"))?)
                }
                F_DESTINATION => m.destination = Some(text().ok_or_else(|| bad("DESTINATION"))?),
                F_SENDER => m.sender = Some(text().ok_or_else(|| bad("SENDER"))?),
                F_SIGNATURE => sig = text().ok_or_else(|| bad("SIGNATURE"))?,
                F_UNIX_FDS => n_fds = v.as_u32().ok_or_else(|| bad("UNIX_FDS"))?,
                // Unknown fields must be ignored.
                _ => {}
            }
        }
        if n_fds != 0 {
            bail!("message carries {n_fds} file descriptors, which were not negotiated");
        }
        let mut bd = Decoder::new(&buf[body_start..], big);
        for t in split_signature(&sig)? {
            m.body.push(bd.get(t)?);
        }
        if bd.pos != body_len {
            bail!("body is longer than its signature {sig:?} says");
        }
        Ok(m)
    }
}

/// An error reply: the remote side's error name and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteError {
    pub name: String,
    pub message: String,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}: {}", self.name, self.message)
        }
    }
}

impl std::error::Error for RemoteError {}

/// A bus address: a socket path or a name in the abstract namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Path(p) => write!(f, "unix:path={}", p.display()),
            Address::Abstract(a) => write!(f, "unix:abstract={}", String::from_utf8_lossy(a)),
        }
    }
}

/// Parses a D-Bus server address list (`unix:path=/x;unix:abstract=y`), keeping the
/// unix-socket entries in order.
pub fn parse_address(s: &str) -> Result<Vec<Address>> {
    let mut out = Vec::new();
    for entry in s.split(';').filter(|e| !e.is_empty()) {
        let Some((transport, params)) = entry.split_once(':') else {
            bail!("D-Bus address {entry:?}: expected transport:key=value,...");
        };
        if transport != "unix" {
            continue;
        }
        for kv in params.split(',') {
            let Some((k, v)) = kv.split_once('=') else {
                bail!("D-Bus address {entry:?}: {kv:?} is not key=value");
            };
            let v = unescape_address(v).with_context(|| format!("D-Bus address {entry:?}"))?;
            match k {
                "path" => out
                    .push(Address::Path(PathBuf::from(String::from_utf8(v).map_err(
                        |_| anyhow!("D-Bus address {entry:?}: path is not UTF-8"),
                    )?))),
                "abstract" => out.push(Address::Abstract(v)),
                _ => {}
            }
        }
    }
    if out.is_empty() {
        bail!("D-Bus address {s:?}: no unix socket in it");
    }
    Ok(out)
}

fn unescape_address(v: &str) -> Result<Vec<u8>> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| anyhow!("bad %-escape in {v:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Hex of the decimal uid, as SASL EXTERNAL wants it ("0" is "30").
fn hex_uid(uid: u32) -> String {
    uid.to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One authenticated connection to a bus (or directly to a peer such as systemd).
pub struct Conn {
    stream: UnixStream,
    rbuf: Vec<u8>,
    next_serial: u32,
    /// The name the bus gave us in Hello; None on a peer-to-peer connection.
    pub unique_name: Option<String>,
    /// Signals that arrived while a reply was awaited.
    queued: VecDeque<Message>,
}

impl Conn {
    /// Connects to the first address of `addrs` that accepts, and authenticates.
    /// A busy listener (EAGAIN: its backlog is full) is retried with a backoff.
    pub fn connect(addrs: &[Address]) -> Result<Conn> {
        let mut last = None;
        for a in addrs {
            match connect_one(a) {
                Ok(s) => return Conn::authenticate(s).with_context(|| format!("D-Bus {a}")),
                Err(e) => last = Some(anyhow!(e).context(format!("connect to D-Bus {a}"))),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no D-Bus address to connect to")))
    }

    /// Runs the SASL handshake on a connected socket (`AUTH EXTERNAL` with our uid).
    pub fn authenticate(stream: UnixStream) -> Result<Conn> {
        let mut c = Conn {
            stream,
            rbuf: Vec::new(),
            next_serial: 1,
            unique_name: None,
            queued: VecDeque::new(),
        };
        let deadline = Instant::now() + CALL_TIMEOUT;
        let uid = nix::unistd::geteuid().as_raw();
        // The leading NUL byte is where credentials would be passed on other systems;
        // Linux servers read them from the socket (SO_PEERCRED).
        c.write_all(format!("\0AUTH EXTERNAL {}\r\n", hex_uid(uid)).as_bytes())
            .context("SASL: send AUTH")?;
        let line = c
            .read_line(deadline)
            .context("SASL: read the reply to AUTH")?;
        match line.split_once(' ').map(|(a, _)| a).unwrap_or(&line) {
            "OK" => {}
            "REJECTED" => {
                bail!("SASL: the server rejected EXTERNAL authentication as uid {uid} ({line:?})")
            }
            _ => bail!("SASL: unexpected reply {line:?} to AUTH EXTERNAL"),
        }
        c.write_all(b"BEGIN\r\n").context("SASL: send BEGIN")?;
        Ok(c)
    }

    /// Registers with the bus daemon (required before any other call on a bus).
    pub fn hello(&mut self) -> Result<String> {
        let r = self.call(
            Some(BUS_NAME),
            BUS_PATH,
            BUS_INTERFACE,
            "Hello",
            vec![],
            CALL_TIMEOUT,
        )?;
        let name = match r.first() {
            Some(Value::Str(s)) => s.clone(),
            _ => bail!("D-Bus Hello: the reply carries no name"),
        };
        self.unique_name = Some(name.clone());
        Ok(name)
    }

    /// Asks the bus daemon to route the signals matching `rule` to us.
    pub fn add_match(&mut self, rule: &str) -> Result<()> {
        self.call(
            Some(BUS_NAME),
            BUS_PATH,
            BUS_INTERFACE,
            "AddMatch",
            vec![Value::str(rule)],
            CALL_TIMEOUT,
        )
        .with_context(|| format!("D-Bus AddMatch {rule:?}"))?;
        Ok(())
    }

    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.stream.set_write_timeout(Some(CALL_TIMEOUT))?;
        self.stream.write_all(b)
    }

    /// Reads more bytes into the buffer; fails at the deadline or on EOF.
    fn fill(&mut self, deadline: Instant) -> Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("timed out");
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut tmp = [0u8; 16384];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(0) => bail!("the connection was closed by the other side"),
                Ok(n) => {
                    self.rbuf.extend_from_slice(&tmp[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    bail!("timed out")
                }
                Err(e) => return Err(e).context("read from the D-Bus socket"),
            }
        }
    }

    fn read_line(&mut self, deadline: Instant) -> Result<String> {
        loop {
            if let Some(i) = self.rbuf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.rbuf.drain(..i + 2).take(i).collect();
                return String::from_utf8(line).map_err(|_| anyhow!("SASL line is not UTF-8"));
            }
            if self.rbuf.len() > 16384 {
                bail!("SASL line too long");
            }
            self.fill(deadline)?;
        }
    }

    /// Reads the next message.
    pub fn read_message(&mut self, deadline: Instant) -> Result<Message> {
        while self.rbuf.len() < 16 {
            self.fill(deadline)?;
        }
        let total = Message::frame_len(&self.rbuf[..16])?;
        while self.rbuf.len() < total {
            self.fill(deadline)?;
        }
        let m = Message::decode(&self.rbuf[..total]);
        self.rbuf.drain(..total);
        m
    }

    /// Sends a message and returns the serial it was given.
    pub fn send(&mut self, m: &Message) -> Result<u32> {
        let serial = self.next_serial;
        self.next_serial = self.next_serial.checked_add(1).unwrap_or(1);
        let bytes = m.encode(serial)?;
        self.write_all(&bytes)
            .with_context(|| format!("send {} over D-Bus", m.name()))?;
        Ok(serial)
    }

    /// Calls a method and waits for its reply: the outer error is the transport's
    /// (timeout, closed connection, malformed message), the inner one the remote
    /// side's error reply.
    pub fn call_checked(
        &mut self,
        destination: Option<&str>,
        path: &str,
        interface: &str,
        member: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<std::result::Result<Vec<Value>, RemoteError>> {
        let msg = Message::method_call(destination, path, interface, member, args);
        let what = msg.name();
        let serial = self.send(&msg)?;
        let deadline = Instant::now() + timeout;
        loop {
            let m = self
                .read_message(deadline)
                .with_context(|| format!("D-Bus {what}: wait for the reply"))?;
            match m.kind {
                Kind::MethodReturn | Kind::Error if m.reply_serial == Some(serial) => {
                    if m.kind == Kind::MethodReturn {
                        return Ok(Ok(m.body));
                    }
                    let message = match m.body.first() {
                        Some(Value::Str(s)) => s.clone(),
                        _ => String::new(),
                    };
                    return Ok(Err(RemoteError {
                        name: m.error_name.unwrap_or_default(),
                        message,
                    }));
                }
                Kind::Signal => self.queue(m),
                Kind::MethodCall => self.refuse(&m)?,
                // A late reply to a call we stopped waiting for.
                _ => {}
            }
        }
    }

    /// Calls a method; an error reply is an error naming the method.
    pub fn call(
        &mut self,
        destination: Option<&str>,
        path: &str,
        interface: &str,
        member: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<Vec<Value>> {
        self.call_checked(destination, path, interface, member, args, timeout)?
            .map_err(|e| anyhow!(e).context(format!("D-Bus {interface}.{member}")))
    }

    fn queue(&mut self, m: Message) {
        if self.queued.len() >= MAX_QUEUED {
            self.queued.pop_front();
        }
        self.queued.push_back(m);
    }

    /// kraal exports no objects: a call to it gets the standard error, so the caller
    /// does not wait for a reply that never comes.
    fn refuse(&mut self, m: &Message) -> Result<()> {
        if m.flags & NO_REPLY_EXPECTED != 0 {
            return Ok(());
        }
        let mut e = Message::error(
            m.serial,
            "org.freedesktop.DBus.Error.UnknownMethod",
            "kraal exports no D-Bus objects",
        );
        e.destination = m.sender.clone();
        self.send(&e)?;
        Ok(())
    }

    /// Waits for the first signal (already queued or still to come) that `want`
    /// accepts; signals it rejects are dropped.
    pub fn wait_signal(
        &mut self,
        deadline: Instant,
        mut want: impl FnMut(&Message) -> bool,
    ) -> Result<Message> {
        while let Some(m) = self.queued.pop_front() {
            if want(&m) {
                return Ok(m);
            }
        }
        loop {
            let m = self.read_message(deadline)?;
            match m.kind {
                Kind::Signal if want(&m) => return Ok(m),
                Kind::MethodCall => self.refuse(&m)?,
                _ => {}
            }
        }
    }
}

/// Connects a unix stream socket, retrying a listener whose backlog is full.
fn connect_one(a: &Address) -> std::io::Result<UnixStream> {
    let addr = match a {
        Address::Path(p) => SocketAddr::from_pathname(p)?,
        Address::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
    };
    let mut delay = Duration::from_millis(50);
    let mut tries = 0;
    loop {
        match UnixStream::connect_addr(&addr) {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < 6 => {
                tries += 1;
                std::thread::sleep(delay);
                delay *= 2;
            }
            r => return r,
        }
    }
}

/// A real bus for tests: kraal's client against the reference daemon.
#[cfg(test)]
pub(crate) mod test_daemon {
    use std::path::PathBuf;

    /// A private dbus-daemon for one test, stopped (by its pid) and removed on drop.
    pub struct Daemon {
        pub address: String,
        child: std::process::Child,
        dir: PathBuf,
    }

    impl Daemon {
        /// Starts `dbus-daemon --session` on a socket in a fresh temp dir.
        pub fn start() -> Daemon {
            use std::io::BufRead;
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "kraal-dbus-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let child = std::process::Command::new("dbus-daemon")
                .args(["--session", "--nofork", "--print-address=1"])
                .arg(format!("--address=unix:path={}", dir.join("bus").display()))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn();
            let child = match child {
                Ok(c) => c,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    panic!("start dbus-daemon (Debian package dbus): {e}");
                }
            };
            // From here on, a failing assertion still stops the daemon (Drop).
            let mut d = Daemon {
                child,
                dir,
                address: String::new(),
            };
            // The daemon prints its address once it listens.
            let out = d.child.stdout.take().unwrap();
            let mut line = String::new();
            std::io::BufReader::new(out).read_line(&mut line).unwrap();
            d.address = line.trim().to_string();
            assert!(d.address.starts_with("unix:path="), "{line:?}");
            d
        }
    }

    impl Drop for Daemon {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Value) -> Vec<u8> {
        let mut e = Encoder::default();
        e.put(v).unwrap();
        e.buf
    }

    fn round_trip(v: Value) {
        let b = enc(&v);
        let mut d = Decoder::new(&b, false);
        assert_eq!(d.get(&v.signature()).unwrap(), v);
        assert_eq!(d.pos, b.len());
    }

    #[test]
    fn basic_types_marshal_little_endian_with_alignment() {
        assert_eq!(enc(&Value::Bool(true)), [1, 0, 0, 0]);
        assert_eq!(enc(&Value::U64(0x0102)), [2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(enc(&Value::str("ab")), [2, 0, 0, 0, b'a', b'b', 0]);
        assert_eq!(enc(&Value::Signature("su".into())), [2, b's', b'u', 0]);
        assert_eq!(
            enc(&Value::ObjectPath("/a".into())),
            [2, 0, 0, 0, b'/', b'a', 0]
        );
        // au: length 8, then two u32s.
        assert_eq!(
            enc(&Value::Array(
                "u".into(),
                vec![Value::U32(7), Value::U32(9)]
            )),
            [8, 0, 0, 0, 7, 0, 0, 0, 9, 0, 0, 0]
        );
        // An empty array of structs is still padded to 8 after its length, and the
        // padding is not counted.
        assert_eq!(
            enc(&Value::Array("(ss)".into(), vec![])),
            [0, 0, 0, 0, 0, 0, 0, 0]
        );
        // A variant holding a u64: signature "t", then padding to 8.
        assert_eq!(
            enc(&Value::variant(Value::U64(5))),
            [1, b't', 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn encoder_refuses_bad_values() {
        let mut e = Encoder::default();
        assert!(e
            .put(&Value::Array("u".into(), vec![Value::str("x")]))
            .is_err());
        assert!(e.put(&Value::ObjectPath("a/b".into())).is_err());
        assert!(e.put(&Value::ObjectPath("/a//b".into())).is_err());
        assert!(e.put(&Value::str("a\0b")).is_err());
        assert!(e.put(&Value::Struct(vec![])).is_err());
    }

    #[test]
    fn containers_round_trip() {
        round_trip(Value::Array(
            "(sv)".into(),
            vec![
                Value::Struct(vec![
                    Value::str("PIDs"),
                    Value::variant(Value::Array("u".into(), vec![Value::U32(42)])),
                ]),
                Value::Struct(vec![
                    Value::str("Delegate"),
                    Value::variant(Value::Bool(true)),
                ]),
                Value::Struct(vec![
                    Value::str("AllowedCPUs"),
                    Value::variant(Value::Array("y".into(), vec![Value::Byte(3)])),
                ]),
                Value::Struct(vec![Value::str("X"), Value::variant(Value::F64(1.5))]),
            ],
        ));
        round_trip(Value::Array(
            "{sv}".into(),
            vec![Value::DictEntry(
                Box::new(Value::str("k")),
                Box::new(Value::variant(Value::I16(-2))),
            )],
        ));
        round_trip(Value::Struct(vec![
            Value::Byte(1),
            Value::I64(-1),
            Value::U16(3),
            Value::I32(-4),
            Value::UnixFd(0),
        ]));
    }

    #[test]
    fn signatures() {
        assert_eq!(
            split_signature("ssa(sv)a(sa(sv))").unwrap(),
            ["s", "s", "a(sv)", "a(sa(sv))"]
        );
        assert_eq!(split_signature("a{sv}u").unwrap(), ["a{sv}", "u"]);
        for bad in ["(", "a", "()", "{sv}", "a{vs}", "a{sss}", "z", "(s"] {
            assert!(split_signature(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decoder_refuses_malformed_input() {
        // A string longer than the buffer.
        let mut d = Decoder::new(&[9, 0, 0, 0, b'a', 0], false);
        assert!(d.get("s").is_err());
        // A boolean that is neither 0 nor 1.
        let mut d = Decoder::new(&[2, 0, 0, 0], false);
        assert!(d.get("b").is_err());
        // An array whose length cuts an element in half.
        let mut d = Decoder::new(&[2, 0, 0, 0, 1, 0, 0, 0], false);
        assert!(d.get("au").is_err());
        // Non-zero padding.
        let mut d = Decoder::new(&[1, 9, 0, 0, 1, 0, 0, 0], false);
        d.get("y").unwrap();
        assert!(d.get("u").is_err());
    }

    #[test]
    fn big_endian_values_decode() {
        let b = [0, 0, 0, 2, 0, 0, 0, 1, b'x', 0];
        let mut d = Decoder::new(&b, true);
        assert_eq!(d.get("u").unwrap(), Value::U32(2));
        assert_eq!(d.get("s").unwrap(), Value::str("x"));
    }

    /// The Hello call, byte by byte as the specification lays it out.
    #[test]
    fn hello_message_bytes() {
        let m = Message::method_call(Some(BUS_NAME), BUS_PATH, BUS_INTERFACE, "Hello", vec![]);
        let b = m.encode(1).unwrap();
        let mut want: Vec<u8> = vec![b'l', 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0];
        let mut fields = Vec::new();
        let mut field = |code: u8, sig: u8, s: &str| {
            while fields.len() % 8 != 0 {
                fields.push(0);
            }
            fields.extend_from_slice(&[code, 1, sig, 0]);
            fields.extend_from_slice(&(s.len() as u32).to_le_bytes());
            fields.extend_from_slice(s.as_bytes());
            fields.push(0);
        };
        field(1, b'o', BUS_PATH);
        field(2, b's', BUS_INTERFACE);
        field(3, b's', "Hello");
        field(6, b's', BUS_NAME);
        // The array starts at offset 16 (8-aligned), so its padding matches ours.
        want.extend_from_slice(&(fields.len() as u32).to_le_bytes());
        want.extend_from_slice(&fields);
        while want.len() % 8 != 0 {
            want.push(0);
        }
        assert_eq!(b, want);
        assert_eq!(Message::frame_len(&b[..16]).unwrap(), b.len());
        let back = Message::decode(&b).unwrap();
        assert_eq!(back.serial, 1);
        assert_eq!(back, Message { serial: 1, ..m });
    }

    #[test]
    fn messages_round_trip_with_body_and_reply_fields() {
        let mut m = Message::error(7, "org.x.Failed", "it broke");
        m.sender = Some(":1.1".into());
        let b = m.encode(3).unwrap();
        let back = Message::decode(&b).unwrap();
        assert_eq!(back, Message { serial: 3, ..m });
        assert!(Message::decode(&b[..b.len() - 1]).is_err());
        let s = Message::signal("/a", "org.x", "Sig", vec![Value::U32(1), Value::str("x")]);
        let back = Message::decode(&s.encode(9).unwrap()).unwrap();
        assert_eq!(back.body, s.body);
        assert!(Message::method_call(None, "/", "i", "m", vec![])
            .encode(0)
            .is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("unix:path=/run/dbus/system_bus_socket").unwrap(),
            [Address::Path("/run/dbus/system_bus_socket".into())]
        );
        assert_eq!(
            parse_address("tcp:host=x,port=1;unix:abstract=/tmp/a%20b,guid=00").unwrap(),
            [Address::Abstract(b"/tmp/a b".to_vec())]
        );
        assert!(parse_address("tcp:host=x").is_err());
        assert!(parse_address("unix:path=%zz").is_err());
        assert_eq!(hex_uid(0), "30");
        assert_eq!(hex_uid(1000), "31303030");
    }

    /// A fake bus on a socketpair: checks the SASL exchange byte for byte, answers
    /// Hello, and sends a signal before a reply (which must be kept for later).
    #[test]
    fn sasl_hello_call_and_queued_signal() {
        let (client, mut server) = UnixStream::pair().unwrap();
        let uid = nix::unistd::geteuid().as_raw();
        let t = std::thread::spawn(move || -> Result<Vec<Message>> {
            let want = format!("\0AUTH EXTERNAL {}\r\n", hex_uid(uid));
            let mut got = vec![0u8; want.len()];
            server.read_exact(&mut got)?;
            assert_eq!(got, want.as_bytes());
            server.write_all(b"OK 0123456789abcdef0123456789abcdef\r\n")?;
            let mut begin = [0u8; 7];
            server.read_exact(&mut begin)?;
            assert_eq!(&begin, b"BEGIN\r\n");
            let mut s = Conn {
                stream: server,
                rbuf: Vec::new(),
                next_serial: 100,
                unique_name: None,
                queued: VecDeque::new(),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut seen = Vec::new();
            let hello = s.read_message(deadline)?;
            s.send(&Message::method_return(
                hello.serial,
                vec![Value::str(":1.42")],
            ))?;
            seen.push(hello);
            let call = s.read_message(deadline)?;
            s.send(&Message::signal(
                "/s",
                "org.x",
                "Early",
                vec![Value::U32(5)],
            ))?;
            s.send(&Message::error(
                call.serial,
                "org.x.Error.Nope",
                "no such thing",
            ))?;
            seen.push(call);
            s.send(&Message::signal("/s", "org.x", "Late", vec![]))?;
            Ok(seen)
        });
        let mut c = Conn::authenticate(client).unwrap();
        assert_eq!(c.hello().unwrap(), ":1.42");
        let r = c
            .call_checked(
                Some("org.x"),
                "/s",
                "org.x",
                "Get",
                vec![Value::str("a")],
                CALL_TIMEOUT,
            )
            .unwrap();
        assert_eq!(
            r,
            Err(RemoteError {
                name: "org.x.Error.Nope".into(),
                message: "no such thing".into()
            })
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let late = c
            .wait_signal(deadline, |m| m.member.as_deref() == Some("Late"))
            .unwrap();
        assert_eq!(late.path.as_deref(), Some("/s"));
        let seen = t.join().unwrap().unwrap();
        assert_eq!(seen[0].name(), "org.freedesktop.DBus.Hello");
        assert_eq!(seen[0].destination.as_deref(), Some(BUS_NAME));
        assert_eq!(seen[1].name(), "org.x.Get");
        assert_eq!(seen[1].body, [Value::str("a")]);
    }

    #[test]
    fn rejected_auth_is_an_error() {
        let (client, mut server) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            let mut b = [0u8; 64];
            let _ = server.read(&mut b);
            let _ = server.write_all(b"REJECTED EXTERNAL\r\n");
        });
        let e = Conn::authenticate(client).err().unwrap();
        assert!(format!("{e:#}").contains("rejected"), "{e:#}");
        t.join().unwrap();
    }

    /// The client against a real dbus-daemon: Hello, ListNames, the uid the daemon
    /// saw in SASL, an error reply, and a signal from one connection to another
    /// through a match rule.
    #[test]
    fn real_dbus_daemon() {
        let d = test_daemon::Daemon::start();
        let addrs = parse_address(&d.address).unwrap();
        let mut a = Conn::connect(&addrs).unwrap();
        let name = a.hello().unwrap();
        assert!(name.starts_with(":1."), "{name}");
        let call = |c: &mut Conn, member: &str, args: Vec<Value>| {
            c.call_checked(
                Some(BUS_NAME),
                BUS_PATH,
                BUS_INTERFACE,
                member,
                args,
                CALL_TIMEOUT,
            )
            .unwrap()
        };
        let names = call(&mut a, "ListNames", vec![]).unwrap();
        let Some(Value::Array(elem, items)) = names.first() else {
            panic!("ListNames: {names:?}");
        };
        assert_eq!(elem, "s");
        assert!(items.contains(&Value::str(BUS_NAME)));
        assert!(items.contains(&Value::Str(name.clone())));
        let uid = call(
            &mut a,
            "GetConnectionUnixUser",
            vec![Value::Str(name.clone())],
        )
        .unwrap();
        assert_eq!(uid, [Value::U32(nix::unistd::geteuid().as_raw())]);
        let e = call(&mut a, "NoSuchMethod", vec![]).unwrap_err();
        assert_eq!(e.name, "org.freedesktop.DBus.Error.UnknownMethod");

        let mut b = Conn::connect(&addrs).unwrap();
        b.hello().unwrap();
        a.add_match("type='signal',interface='org.kraal.Test',member='Ping'")
            .unwrap();
        b.send(&Message::signal(
            "/org/kraal/test",
            "org.kraal.Test",
            "Other",
            vec![],
        ))
        .unwrap();
        b.send(&Message::signal(
            "/org/kraal/test",
            "org.kraal.Test",
            "Ping",
            vec![Value::U64(7), Value::str("x")],
        ))
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let m = a
            .wait_signal(deadline, |m| m.member.as_deref() == Some("Ping"))
            .unwrap();
        assert_eq!(m.body, [Value::U64(7), Value::str("x")]);
        assert_eq!(m.sender, b.unique_name);
    }

    #[test]
    fn closed_connection_and_timeout_are_errors() {
        let (client, server) = UnixStream::pair().unwrap();
        drop(server);
        assert!(Conn::authenticate(client).is_err());
        let (client, _server) = UnixStream::pair().unwrap();
        let mut c = Conn {
            stream: client,
            rbuf: Vec::new(),
            next_serial: 1,
            unique_name: None,
            queued: VecDeque::new(),
        };
        let e = c
            .read_message(Instant::now() + Duration::from_millis(20))
            .unwrap_err();
        assert!(e.to_string().contains("timed out"), "{e}");
    }
}
