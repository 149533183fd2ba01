//! TFRecord framing, which event files use: each record is its length (u64, little-endian),
//! the masked CRC-32C of those 8 bytes, the data, and the data's masked CRC-32C.

use std::io::{self, Read, Write};

/// TensorFlow's CRC mask: rotated right by 15 bits plus a constant.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Frames `data` as one record.
pub fn write_record(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    out.write_all(&len)?;
    out.write_all(&masked_crc(&len).to_le_bytes())?;
    out.write_all(data)?;
    out.write_all(&masked_crc(data).to_le_bytes())
}

/// Longest record read back (an event file's records are a few megabytes at most): a length
/// beyond it is damage, not a reason to allocate.
pub const MAX_RECORD: u64 = 1 << 30;

/// The next record's data; `Ok(None)` at a clean end, and also at a record cut short (a
/// writer stopped mid-record: what came before stands). A checksum that does not match is an
/// error.
pub fn read_record(input: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 12];
    if !read_full(input, &mut header)? {
        return Ok(None);
    }
    let (len, crc) = header.split_at(8);
    if masked_crc(len) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(corrupt("a record length's checksum does not match"));
    }
    let len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
    if len > MAX_RECORD {
        return Err(corrupt(&format!("a record claims {len} bytes")));
    }
    let mut data = vec![0u8; len as usize + 4];
    if !read_full(input, &mut data)? {
        return Ok(None);
    }
    let crc = data.split_off(len as usize);
    if masked_crc(&data) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(corrupt("a record's checksum does not match"));
    }
    Ok(Some(data))
}

/// Fills `buf`: `false` when the input ends first (at its start or part-way).
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match input.read_exact(buf) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        done => done.map(|()| true),
    }
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_and_crc_are_tensorflows() {
        // CRC-32C of "123456789" is 0xE3069283 (the standard check value); masked:
        // rotr(0xE3069283, 15) = 0x2507C60D, plus 0xA282EAD8 = 0xC78AB0E5.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xC78A_B0E5);
    }

    #[test]
    fn records_round_trip_a_cut_one_ends_the_file_and_a_flipped_byte_is_an_error() {
        let mut file = Vec::new();
        write_record(&mut file, b"first").unwrap();
        write_record(&mut file, b"").unwrap();
        write_record(&mut file, &[7u8; 300]).unwrap();
        assert_eq!(file.len(), 3 * 16 + 5 + 300);
        let mut r = file.as_slice();
        assert_eq!(read_record(&mut r).unwrap().unwrap(), b"first");
        assert_eq!(read_record(&mut r).unwrap().unwrap(), b"");
        assert_eq!(read_record(&mut r).unwrap().unwrap(), vec![7u8; 300]);
        assert!(read_record(&mut r).unwrap().is_none());

        let mut cut = &file[..file.len() - 3];
        for _ in 0..2 {
            assert!(read_record(&mut cut).unwrap().is_some());
        }
        assert!(read_record(&mut cut).unwrap().is_none());

        let mut flipped = file.clone();
        flipped[12] ^= 1; // the first record's data
        let e = read_record(&mut flipped.as_slice()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
