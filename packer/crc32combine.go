package packer

// crc32Combine returns the CRC-32 (IEEE) of A followed by B from crcA, crcB
// and the length of B, without reading either: appending lenB bytes to A
// multiplies A's remainder by x^(8*lenB) modulo the polynomial, and B's CRC
// is added to that. hash/crc32 cannot continue from a CRC it did not
// compute, which is what joining pieces compressed apart needs.
func crc32Combine(crcA, crcB uint32, lenB int64) uint32 {
	return gf2MulMod(x8nMod(uint64(lenB)), crcA) ^ crcB
}

// crcPoly is the IEEE polynomial in the bit-reversed form CRC-32 works in:
// bit 31 is x^0.
const crcPoly = 0xedb88320

// gf2MulMod multiplies a and b as polynomials over GF(2) modulo crcPoly,
// both in the reversed representation.
func gf2MulMod(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		if b&1 != 0 {
			b = b>>1 ^ crcPoly
		} else {
			b >>= 1
		}
	}
	return p
}

// x2k[k] is x^(2^k) modulo crcPoly, for every k a 64-bit byte count
// times 8 can select.
var x2k = func() (t [3 + 64]uint32) {
	p := uint32(1) << 30 // x^1
	for k := range t {
		t[k] = p
		p = gf2MulMod(p, p)
	}
	return t
}()

// x8nMod is x^(8n) modulo crcPoly: the factor that shifts a CRC past n
// zero bytes, assembled from the powers x^(2^k) the bits of 8n select.
func x8nMod(n uint64) uint32 {
	p := uint32(1) << 31 // x^0
	for k := 3; n != 0; k, n = k+1, n>>1 {
		if n&1 != 0 {
			p = gf2MulMod(x2k[k], p)
		}
	}
	return p
}
