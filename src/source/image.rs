//! VM disk images as the guest sees them: raw files directly, qcow2 (and
//! the other formats `qemu-img` knows: vmdk, vhdx, vdi, ...) through
//! `qemu-nbd`, which serves the image's guest view on a private Unix
//! socket; this module is the NBD client that reads it.
//!
//! Ranges the image does not allocate, or knows to be zero (`qemu-img map`),
//! are not read at all: the stream yields zeros for them, which the backup
//! stores once (every zero chunk is the same blob) and a restore writes as
//! holes. The stream is the raw disk, so a restore gives a sparse raw image
//! (`restore --image-format qcow2` converts it back with `qemu-img`), and
//! two VMs cloned from one template share the template's chunks.
//!
//! NBD, as much as is needed (the "fixed newstyle" handshake, `NBD_OPT_GO`,
//! `NBD_CMD_READ` with simple replies, `NBD_CMD_DISC`): every field the
//! server sends is checked, and a reply that does not match its request
//! fails the read.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result};

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943; // "NBDMAGIC"
const IHAVEOPT: u64 = 0x4948_4156_454f_5054; // "IHAVEOPT"
const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const FLAG_FIXED_NEWSTYLE: u16 = 1;
const FLAG_NO_ZEROES: u16 = 2;
const OPT_GO: u32 = 7;
const REP_ACK: u32 = 1;
const REP_INFO: u32 = 3;
const INFO_EXPORT: u16 = 0;
const CMD_READ: u16 = 0;
const CMD_DISC: u16 = 2;
/// The largest read asked for at once (qemu-nbd serves up to 32 MiB).
const MAX_READ: u64 = 4 << 20;

/// A VM disk image to back up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSource {
    /// The image file.
    pub path: PathBuf,
    /// Its format (`raw`, `qcow2`, ...); `None`: asked of `qemu-img info`.
    pub format: Option<String>,
}

impl ImageSource {
    /// The file name the raw disk has in the snapshot: the image's name
    /// with `.raw` (`vm1.qcow2` → `vm1.raw`).
    pub fn stream_name(&self) -> String {
        let stem = self
            .path
            .file_stem()
            .map_or_else(|| "disk".into(), |s| s.to_string_lossy().into_owned());
        format!("{stem}.raw")
    }
}

fn io(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(what.to_string(), e)
}

fn proto(why: impl Into<String>) -> Error {
    Error::Command(format!("qemu-nbd: {}", why.into()))
}

/// The image's format, from `qemu-img info`.
fn format_of(path: &Path) -> Result<String> {
    let o = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Error::Command(format!("`qemu-img` cannot start (install qemu-utils): {e}"))
        })?;
    if !o.status.success() {
        return Err(Error::Command(format!(
            "`qemu-img info {}` failed: {}",
            path.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .map_err(|e| Error::Command(format!("`qemu-img info`: unexpected answer: {e}")))?;
    v["format"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::Command("`qemu-img info` named no format".into()))
}

/// One extent of the guest view: `data` false for a range that reads as
/// zeros (unallocated, or known zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extent {
    start: u64,
    length: u64,
    data: bool,
}

/// The guest view's extents, from `qemu-img map` (a range is data unless
/// the image says it reads as zeros).
fn extents(path: &Path, format: &str) -> Result<Vec<Extent>> {
    let o = Command::new("qemu-img")
        .args(["map", "--output=json", "-f", format])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Command(format!("`qemu-img` cannot start: {e}")))?;
    if !o.status.success() {
        return Err(Error::Command(format!(
            "`qemu-img map {}` failed: {}",
            path.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    parse_map(&o.stdout)
}

/// The extents `qemu-img map --output=json` printed: they must start at 0,
/// follow each other and end within 2^64 bytes; neighbours of one kind are
/// merged.
fn parse_map(json: &[u8]) -> Result<Vec<Extent>> {
    let v: Vec<serde_json::Value> = serde_json::from_slice(json)
        .map_err(|e| Error::Command(format!("`qemu-img map`: unexpected answer: {e}")))?;
    let mut out: Vec<Extent> = Vec::new();
    let mut at = 0u64;
    for e in v {
        let (Some(start), Some(length)) = (e["start"].as_u64(), e["length"].as_u64()) else {
            return Err(Error::Command(
                "`qemu-img map`: an extent without start or length".into(),
            ));
        };
        if start != at {
            return Err(Error::Command(format!(
                "`qemu-img map`: extents do not follow each other at {at}"
            )));
        }
        let data = !e["zero"].as_bool().unwrap_or(false);
        at = start.checked_add(length).ok_or_else(|| {
            Error::Command(format!(
                "`qemu-img map`: an extent at {start} ends beyond 2^64 bytes"
            ))
        })?;
        match out.last_mut() {
            Some(last) if last.data == data => last.length += length,
            _ => out.push(Extent {
                start,
                length,
                data,
            }),
        }
    }
    Ok(out)
}

/// The most option replies the handshake reads before the server's
/// acknowledgement (qemu-nbd sends a handful).
const MAX_OPTION_REPLIES: usize = 64;

/// An NBD connection to `qemu-nbd` (a Unix socket; any stream in the fuzz
/// target).
struct Nbd<S = UnixStream> {
    sock: S,
    size: u64,
    cookie: u64,
}

fn read_u16(r: &mut impl Read) -> Result<u16> {
    let mut b = [0u8; 2];
    r.read_exact(&mut b).map_err(io("NBD handshake"))?;
    Ok(u16::from_be_bytes(b))
}
fn read_u32(r: &mut impl Read) -> Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).map_err(io("NBD handshake"))?;
    Ok(u32::from_be_bytes(b))
}
fn read_u64(r: &mut impl Read) -> Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b).map_err(io("NBD handshake"))?;
    Ok(u64::from_be_bytes(b))
}

impl<S: Read + Write> Nbd<S> {
    /// The fixed newstyle handshake and `NBD_OPT_GO` on the default export.
    fn handshake(mut sock: S) -> Result<Nbd<S>> {
        if read_u64(&mut sock)? != NBDMAGIC || read_u64(&mut sock)? != IHAVEOPT {
            return Err(proto("not an NBD newstyle server"));
        }
        let flags = read_u16(&mut sock)?;
        if flags & FLAG_FIXED_NEWSTYLE == 0 {
            return Err(proto("the server does not speak fixed newstyle"));
        }
        let client_flags = u32::from(flags & (FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES));
        let mut msg = Vec::new();
        msg.extend_from_slice(&client_flags.to_be_bytes());
        // NBD_OPT_GO: export name "" (the only one), no info requests.
        msg.extend_from_slice(&IHAVEOPT.to_be_bytes());
        msg.extend_from_slice(&OPT_GO.to_be_bytes());
        msg.extend_from_slice(&6u32.to_be_bytes());
        msg.extend_from_slice(&0u32.to_be_bytes());
        msg.extend_from_slice(&0u16.to_be_bytes());
        sock.write_all(&msg).map_err(io("NBD handshake"))?;
        let mut size = None;
        let mut replies = 0;
        loop {
            replies += 1;
            if replies > MAX_OPTION_REPLIES {
                return Err(proto(format!(
                    "more than {MAX_OPTION_REPLIES} option replies"
                )));
            }
            if read_u64(&mut sock)? != REPLY_MAGIC {
                return Err(proto("bad option reply magic"));
            }
            if read_u32(&mut sock)? != OPT_GO {
                return Err(proto("a reply to another option"));
            }
            let kind = read_u32(&mut sock)?;
            let len = read_u32(&mut sock)?;
            if len > 1 << 16 {
                return Err(proto("an option reply over 64 KiB"));
            }
            let mut data = vec![0u8; len as usize];
            sock.read_exact(&mut data).map_err(io("NBD handshake"))?;
            match kind {
                REP_ACK => break,
                REP_INFO
                    if data.len() >= 12
                        && u16::from_be_bytes([data[0], data[1]]) == INFO_EXPORT =>
                {
                    let mut s = [0u8; 8];
                    s.copy_from_slice(&data[2..10]);
                    size = Some(u64::from_be_bytes(s));
                }
                REP_INFO => {}
                k if k & 0x8000_0000 != 0 => {
                    return Err(proto(format!(
                        "the export was refused ({k:#x}): {}",
                        String::from_utf8_lossy(&data)
                    )))
                }
                _ => {}
            }
        }
        let size = size.ok_or_else(|| proto("no export size"))?;
        Ok(Nbd {
            sock,
            size,
            cookie: 0,
        })
    }

    /// Reads `buf.len()` bytes (at most [`MAX_READ`]) at `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if buf.len() as u64 > MAX_READ {
            return Err(proto(format!("a read of {} bytes at once", buf.len())));
        }
        self.cookie += 1;
        let mut req = Vec::with_capacity(28);
        req.extend_from_slice(&REQUEST_MAGIC.to_be_bytes());
        req.extend_from_slice(&0u16.to_be_bytes());
        req.extend_from_slice(&CMD_READ.to_be_bytes());
        req.extend_from_slice(&self.cookie.to_be_bytes());
        req.extend_from_slice(&offset.to_be_bytes());
        req.extend_from_slice(&(buf.len() as u32).to_be_bytes());
        self.sock.write_all(&req).map_err(io("NBD read"))?;
        if read_u32(&mut self.sock)? != SIMPLE_REPLY_MAGIC {
            return Err(proto("bad reply magic"));
        }
        let error = read_u32(&mut self.sock)?;
        if read_u64(&mut self.sock)? != self.cookie {
            return Err(proto("a reply to another request"));
        }
        if error != 0 {
            return Err(proto(format!("read at {offset} failed (error {error})")));
        }
        self.sock.read_exact(buf).map_err(io("NBD read"))
    }

    fn disconnect(&mut self) {
        let mut req = Vec::with_capacity(28);
        req.extend_from_slice(&REQUEST_MAGIC.to_be_bytes());
        req.extend_from_slice(&0u16.to_be_bytes());
        req.extend_from_slice(&CMD_DISC.to_be_bytes());
        req.extend_from_slice(&0u64.to_be_bytes());
        req.extend_from_slice(&0u64.to_be_bytes());
        req.extend_from_slice(&0u32.to_be_bytes());
        let _ = self.sock.write_all(&req);
    }
}

/// Where the bytes of the guest view come from.
enum Reader {
    Raw(std::fs::File),
    Nbd(Nbd),
}

/// The guest view of an image as one stream (see the module's overview).
pub struct ImageStream {
    reader: Reader,
    extents: Vec<Extent>,
    /// Index of the extent holding `pos`.
    at: usize,
    pos: u64,
    size: u64,
    server: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl ImageStream {
    /// Opens `src`: a raw image as a file, any other format through a
    /// `qemu-nbd` of its own (read-only, on a socket in a private temporary
    /// directory).
    ///
    /// # Errors
    /// [`Error::Io`] for an image that cannot be opened, [`Error::Command`]
    /// when `qemu-img` or `qemu-nbd` fails.
    pub fn open(src: &ImageSource) -> Result<ImageStream> {
        let format = match &src.format {
            Some(f) => f.clone(),
            None => format_of(&src.path)?,
        };
        let extents = extents(&src.path, &format)?;
        let size = extents.last().map_or(0, |e| e.start + e.length);
        if format == "raw" {
            let f = std::fs::File::open(&src.path)
                .map_err(|e| Error::io_path("cannot open the image", &src.path, e))?;
            return Ok(ImageStream {
                reader: Reader::Raw(f),
                extents,
                at: 0,
                pos: 0,
                size,
                server: None,
                _dir: None,
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("custos-nbd-")
            .tempdir()
            .map_err(io("cannot make the NBD socket's directory"))?;
        let sock_path = dir.path().join("nbd.sock");
        let mut server = Command::new("qemu-nbd")
            .arg("--read-only")
            .arg("--shared=1")
            .arg(format!("--format={format}"))
            .arg(format!("--socket={}", sock_path.display()))
            .arg(&src.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::Command(format!("`qemu-nbd` cannot start (install qemu-utils): {e}"))
            })?;
        let started = Instant::now();
        let sock = loop {
            if let Ok(s) = UnixStream::connect(&sock_path) {
                break s;
            }
            if let Ok(Some(status)) = server.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = server.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return Err(Error::Command(format!(
                    "`qemu-nbd` stopped ({status}): {}",
                    err.trim()
                )));
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = server.kill();
                let _ = server.wait();
                return Err(Error::Command(
                    "`qemu-nbd` did not listen within 30 s".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let nbd = match sock
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(io("NBD socket"))
            .and_then(|()| Nbd::handshake(sock))
        {
            Ok(n) => n,
            Err(e) => {
                let _ = server.kill();
                let _ = server.wait();
                return Err(e);
            }
        };
        if nbd.size != size {
            let _ = server.kill();
            let _ = server.wait();
            return Err(proto(format!(
                "the export is {} bytes, the map {size}",
                nbd.size
            )));
        }
        Ok(ImageStream {
            reader: Reader::Nbd(nbd),
            extents,
            at: 0,
            pos: 0,
            size,
            server: Some(server),
            _dir: Some(dir),
        })
    }

    /// The guest disk's size.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Read for ImageStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at < self.extents.len()
            && self.pos >= self.extents[self.at].start + self.extents[self.at].length
        {
            self.at += 1;
        }
        let Some(e) = self.extents.get(self.at).copied() else {
            return Ok(0);
        };
        let left = e.start + e.length - self.pos;
        let n = (buf.len() as u64).min(left).min(MAX_READ) as usize;
        if !e.data {
            buf[..n].fill(0);
        } else {
            match &mut self.reader {
                Reader::Raw(f) => {
                    use std::os::unix::fs::FileExt;
                    f.read_exact_at(&mut buf[..n], self.pos)?;
                }
                Reader::Nbd(nbd) => nbd
                    .read_at(self.pos, &mut buf[..n])
                    .map_err(std::io::Error::other)?,
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Drop for ImageStream {
    fn drop(&mut self) {
        if let Reader::Nbd(n) = &mut self.reader {
            n.disconnect();
        }
        if let Some(mut s) = self.server.take() {
            // qemu-nbd without --persistent ends with its client; make sure.
            let deadline = Instant::now() + Duration::from_secs(5);
            while s.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

/// Entry points of the fuzz targets (`fuzz/`): what `qemu-img map` prints
/// and what `qemu-nbd` answers are parsed by this module's decoders.
#[doc(hidden)]
pub mod fuzzing {
    use std::io::{Read, Write};

    /// Parses `json` as `qemu-img map --output=json`; the guest size.
    ///
    /// # Errors
    /// A map that is not JSON, or whose extents do not start at 0, follow
    /// each other and end within 2^64 bytes.
    pub fn qemu_img_map(json: &[u8]) -> crate::Result<u64> {
        Ok(super::parse_map(json)?
            .last()
            .map_or(0, |e| e.start + e.length))
    }

    /// A server's side of an NBD conversation: it answers with the bytes
    /// it was given and drops what the client writes.
    pub(crate) struct Scripted(std::io::Cursor<Vec<u8>>);

    impl Scripted {
        pub(crate) fn new(answers: Vec<u8>) -> Scripted {
            Scripted(std::io::Cursor::new(answers))
        }
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The NBD handshake against a server that answers `answers`, then a
    /// read of each `(offset, length)` and the disconnect.
    ///
    /// # Errors
    /// What the client refuses in the server's answers.
    pub fn nbd_client(answers: &[u8], reads: &[(u64, u32)]) -> crate::Result<()> {
        let mut nbd = super::Nbd::handshake(Scripted::new(answers.to_vec()))?;
        let mut buf = Vec::new();
        for &(offset, length) in reads {
            buf.resize(length as usize, 0);
            nbd.read_at(offset, &mut buf)?;
        }
        nbd.disconnect();
        Ok(())
    }
}

/// Converts the raw image at `raw` into `format` at `out` (`qemu-img
/// convert`, zero ranges left unallocated).
///
/// # Errors
/// [`Error::Command`] with `qemu-img`'s message when it fails.
pub fn convert(raw: &Path, format: &str, out: &Path) -> Result<()> {
    let o = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", format])
        .arg(raw)
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Error::Command(format!("`qemu-img` cannot start (install qemu-utils): {e}"))
        })?;
    if o.status.success() {
        Ok(())
    } else {
        Err(Error::Command(format!(
            "`qemu-img convert` to {format} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu() -> bool {
        Command::new("qemu-img")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn qemu_io(path: &Path, format: &str, cmd: &str) {
        let o = Command::new("qemu-io")
            .args(["-f", format, "-c", cmd])
            .arg(path)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    #[test]
    fn the_map_must_cover_the_disk_from_zero_without_gaps() {
        let map = br#"[{"start":0,"length":65536,"zero":false},
            {"start":65536,"length":65536,"zero":false},
            {"start":131072,"length":1048576,"zero":true}]"#;
        assert_eq!(
            parse_map(map).unwrap(),
            vec![
                Extent {
                    start: 0,
                    length: 131_072,
                    data: true
                },
                Extent {
                    start: 131_072,
                    length: 1_048_576,
                    data: false
                },
            ]
        );
        for (bad, why) in [
            (&br#"[{"start":512,"length":512}]"#[..], "follow each other"),
            (br#"[{"start":0,"length":512},{"start":1024,"length":1}]"#, "follow each other"),
            (br#"[{"start":0,"length":18446744073709551615},{"start":18446744073709551615,"length":2}]"#, "beyond 2^64"),
            (br#"[{"start":0}]"#, "without start or length"),
            (b"{}", "unexpected answer"),
        ] {
            let e = parse_map(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    fn greeting() -> Vec<u8> {
        [
            &NBDMAGIC.to_be_bytes()[..],
            &IHAVEOPT.to_be_bytes(),
            &3u16.to_be_bytes(),
        ]
        .concat()
    }

    fn option_reply(kind: u32, data: &[u8]) -> Vec<u8> {
        [
            &REPLY_MAGIC.to_be_bytes()[..],
            &OPT_GO.to_be_bytes(),
            &kind.to_be_bytes(),
            &(data.len() as u32).to_be_bytes(),
            data,
        ]
        .concat()
    }

    fn export_info(size: u64) -> Vec<u8> {
        option_reply(
            REP_INFO,
            &[&[0u8, 0][..], &size.to_be_bytes(), &[0, 0]].concat(),
        )
    }

    fn read_reply(error: u32, cookie: u64, data: &[u8]) -> Vec<u8> {
        [
            &SIMPLE_REPLY_MAGIC.to_be_bytes()[..],
            &error.to_be_bytes(),
            &cookie.to_be_bytes(),
            data,
        ]
        .concat()
    }

    fn session(server: Vec<u8>) -> Result<Nbd<fuzzing::Scripted>> {
        Nbd::handshake(fuzzing::Scripted::new(server))
    }

    #[test]
    fn the_nbd_client_checks_every_answer_of_the_server() {
        let ok = [greeting(), export_info(4096), option_reply(REP_ACK, &[])].concat();
        let mut nbd = session([ok.clone(), read_reply(0, 1, b"abcd")].concat()).unwrap();
        assert_eq!(nbd.size, 4096);
        let mut buf = [0u8; 4];
        nbd.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf, b"abcd");

        let refuse = |server: Vec<u8>, why: &str| {
            let e = match session(server) {
                Ok(mut nbd) => nbd.read_at(0, &mut [0u8; 4]).unwrap_err(),
                Err(e) => e,
            }
            .to_string();
            assert!(e.contains(why), "{why}: {e}");
        };
        refuse(b"NBDMAGIC".repeat(2), "not an NBD newstyle server");
        refuse(
            [greeting(), option_reply(REP_ACK, &[])].concat(),
            "no export size",
        );
        refuse(
            [greeting(), option_reply(0x8000_0001, b"no such export")].concat(),
            "the export was refused",
        );
        refuse(
            [
                greeting(),
                option_reply(REP_INFO, &[]).repeat(MAX_OPTION_REPLIES + 1),
            ]
            .concat(),
            "option replies",
        );
        refuse(
            [greeting(), option_reply(REP_INFO, &vec![0; (1 << 16) + 1])].concat(),
            "over 64 KiB",
        );
        refuse(
            [ok.clone(), read_reply(0, 2, b"abcd")].concat(),
            "another request",
        );
        refuse(
            [ok.clone(), read_reply(5, 1, b"")].concat(),
            "failed (error 5)",
        );
        refuse([ok.clone(), read_reply(0, 1, b"ab")].concat(), "NBD read");
        let mut nbd = session(ok).unwrap();
        let e = nbd
            .read_at(0, &mut vec![0u8; MAX_READ as usize + 1])
            .unwrap_err();
        assert!(e.to_string().contains("at once"), "{e}");
    }

    #[test]
    fn a_qcow2_reads_as_its_guest_view_and_skips_holes() {
        if !qemu() {
            eprintln!("SKIP: qemu-img is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("vm.qcow2");
        let o = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&img)
            .arg("16M")
            .output()
            .unwrap();
        assert!(o.status.success());
        qemu_io(&img, "qcow2", "write -P 0xab 1M 64k");
        qemu_io(&img, "qcow2", "write -P 0x11 10M 4k");
        let src = ImageSource {
            path: img.clone(),
            format: None,
        };
        assert_eq!(src.stream_name(), "vm.raw");
        let mut s = ImageStream::open(&src).unwrap();
        assert_eq!(s.size(), 16 << 20);
        assert!(s.extents.iter().any(|e| !e.data), "holes are known");
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), 16 << 20);
        assert!(all[(1 << 20)..(1 << 20) + (64 << 10)]
            .iter()
            .all(|b| *b == 0xab));
        assert!(all[(10 << 20)..(10 << 20) + 4096]
            .iter()
            .all(|b| *b == 0x11));
        assert!(all[..1 << 20].iter().all(|b| *b == 0));
        assert!(all[(12 << 20)..].iter().all(|b| *b == 0));
        drop(s);
        // The same bytes from the raw conversion of the image.
        let raw = dir.path().join("vm.raw");
        let o = Command::new("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(&img)
            .arg(&raw)
            .output()
            .unwrap();
        assert!(o.status.success());
        let mut r = ImageStream::open(&ImageSource {
            path: raw,
            format: Some("raw".into()),
        })
        .unwrap();
        let mut again = Vec::new();
        r.read_to_end(&mut again).unwrap();
        assert_eq!(again, all);
    }
}
