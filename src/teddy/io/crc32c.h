#pragma once
// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum TFRecord files
// (TensorBoard event files) carry, and TensorFlow's "masked" form of it.
#include <cstddef>
#include <cstdint>

namespace teddy {

// crc32c("123456789") == 0xE3069283 (RFC 3720, appendix B.4).
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);

// TFRecord stores CRCs rotated and offset so that a CRC of data that itself holds
// CRCs does not degenerate (tensorflow/core/lib/hash/crc32c.h, Mask).
inline uint32_t crc32c_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

}  // namespace teddy
