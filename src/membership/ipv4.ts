/**
 * IPv4 address math for the control protocol (pure). Addresses travel as 32-bit big-endian
 * integers on the wire and as dotted quads everywhere else.
 */

/** Parses a dotted quad strictly (no leading zeros, no shorthand); null when it is not one. */
export function parseIPv4(text: string): number | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    // Leading zeros are refused: inet_aton reads "010" as octal, so such text is ambiguous.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return null;
    const octet = Number(part);
    if (octet > 255) return null;
    value = value * 256 + octet;
  }
  return value;
}

export function formatIPv4(value: number): string {
  return `${(value >>> 24) & 255}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

/** 224.0.0.0/4. */
export function isMulticast(value: number): boolean {
  return value >>> 28 === 0xe;
}

/**
 * A group that may be announced and get MDB entries: 224.0.0.0/4 minus the link-local
 * 224.0.0.0/24, which the kernel refuses as an MDB group ("IPv4 entry group address is local
 * multicast") and which always follows the flood entries anyway.
 */
export function isRoutableMulticast(value: number): boolean {
  return isMulticast(value) && value >>> 8 !== 0xe00000;
}

/** An address a pod can have: not 0.0.0.0/8, not multicast, not class E or broadcast. */
export function isUnicast(value: number): boolean {
  return value >>> 24 !== 0 && value >>> 28 < 0xe;
}

/** Orders dotted quads numerically (so 10.0.0.9 sorts before 10.0.0.10). */
export function compareIPv4(a: string, b: string): number {
  return (parseIPv4(a) ?? -1) - (parseIPv4(b) ?? -1);
}
