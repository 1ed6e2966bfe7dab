//! A header map as Envoy serializes it, read in place.
//!
//! The SDK's map getter turns every header into a `String` and a `Vec<u8>` (two allocations, a UTF-8 check, two
//! frees per header): for a browser's dozen headers that was three quarters of what a simple policy cost per
//! request inside the VM. Here the host's buffer is kept as it is, with one small index of where each name and
//! value lies. Names are bytes too, so a non-UTF-8 name (which the SDK's getter would panic on) is just a name.

/// One request's or response's headers: the serialized map and where each pair lies in it.
#[derive(Debug, Default)]
pub struct HeaderMap {
    buffer: Vec<u8>,
    /// Per pair: name start, name end, value start, value end (offsets into `buffer`, checked when parsed).
    pairs: Vec<[u32; 4]>,
}

impl HeaderMap {
    /// Reads Envoy's serialization: a pair count, then each pair's name and value lengths (u32 little-endian), then
    /// each name and value followed by a NUL. A malformed map keeps the pairs before the fault.
    pub fn parse(buffer: Vec<u8>) -> HeaderMap {
        let u32_at = |at: usize| -> Option<u32> {
            let bytes = buffer.get(at..at.checked_add(4)?)?;
            Some(u32::from_le_bytes([*bytes.first()?, *bytes.get(1)?, *bytes.get(2)?, *bytes.get(3)?]))
        };
        let count = u32_at(0).unwrap_or(0);
        // Each pair needs 8 bytes of lengths and 2 NULs, so a count past that is a lie: do not reserve for it.
        let most = buffer.len() / 10;
        let mut pairs = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(most));
        let mut data = 4usize.saturating_add(usize::try_from(count).unwrap_or(usize::MAX).saturating_mul(8));
        for n in 0..usize::try_from(count).unwrap_or(0).min(most) {
            let lengths = 4 + n * 8;
            let (Some(name_len), Some(value_len)) = (u32_at(lengths), u32_at(lengths + 4)) else { break };
            let Some(pair) = Self::place(data, name_len, value_len, buffer.len()) else { break };
            pairs.push(pair);
            data = usize::try_from(pair[3]).unwrap_or(usize::MAX).saturating_add(1);
        }
        HeaderMap { buffer, pairs }
    }

    /// Where a pair of these lengths starting at `data` lies, if it fits in `len` bytes with its NULs.
    fn place(data: usize, name_len: u32, value_len: u32, len: usize) -> Option<[u32; 4]> {
        let name_start = u32::try_from(data).ok()?;
        let name_end = name_start.checked_add(name_len)?;
        let value_start = name_end.checked_add(1)?;
        let value_end = value_start.checked_add(value_len)?;
        (usize::try_from(value_end).ok()? < len).then_some([name_start, name_end, value_start, value_end])
    }

    fn slice(&self, start: u32, end: u32) -> &[u8] {
        let range = usize::try_from(start).unwrap_or(usize::MAX)..usize::try_from(end).unwrap_or(usize::MAX);
        self.buffer.get(range).unwrap_or_default()
    }

    /// Every (name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.pairs.iter().map(|[ns, ne, vs, ve]| (self.slice(*ns, *ne), self.slice(*vs, *ve)))
    }

    /// The first value of header `name` (lower-case, as Envoy keeps them; pseudo-headers included).
    pub fn first(&self, name: &str) -> Option<&[u8]> {
        self.iter().find(|(n, _)| *n == name.as_bytes()).map(|(_, v)| v)
    }

    /// How many pairs there are.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True without any pair.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialize(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (n, v) in pairs {
            out.extend((n.len() as u32).to_le_bytes());
            out.extend((v.len() as u32).to_le_bytes());
        }
        for (n, v) in pairs {
            out.extend(*n);
            out.push(0);
            out.extend(*v);
            out.push(0);
        }
        out
    }

    #[test]
    fn reads_what_envoy_serializes() {
        let pairs: [(&[u8], &[u8]); 4] =
            [(b":path", b"/a?b"), (b"x-empty", b""), (b"cookie", b"a=1"), (b"cookie", b"\xff\xfe")];
        let map = HeaderMap::parse(serialize(&pairs));
        assert_eq!(map.len(), 4);
        assert_eq!(map.iter().collect::<Vec<_>>(), pairs.to_vec());
        assert_eq!(map.first("cookie"), Some(&b"a=1"[..]));
        assert_eq!(map.first("x-empty"), Some(&b""[..]));
        assert_eq!(map.first("missing"), None);
        let odd_name = HeaderMap::parse(serialize(&[(b"\xc3(", b"v")]));
        assert_eq!(odd_name.iter().next(), Some((&b"\xc3("[..], &b"v"[..])), "non-UTF-8 names are bytes");
    }

    #[test]
    fn malformed_maps_keep_what_fits_and_never_panic() {
        assert!(HeaderMap::parse(Vec::new()).is_empty());
        let whole = serialize(&[(b"a", b"1"), (b"bb", b"22")]);
        for cut in 0..whole.len() {
            let map = HeaderMap::parse(whole[..cut].to_vec());
            assert!(map.len() <= 2);
        }
        let mut lying = whole.clone();
        lying[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(HeaderMap::parse(lying).len() <= 2);
        let mut long = whole.clone();
        long[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(HeaderMap::parse(long).is_empty());
        for flip in 0..whole.len() {
            let mut bytes = whole.clone();
            bytes[flip] ^= 0xff;
            let map = HeaderMap::parse(bytes);
            let _ = map.iter().count();
        }
    }
}
