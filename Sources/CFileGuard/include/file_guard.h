#ifndef TERNQ_FILE_GUARD_H
#define TERNQ_FILE_GUARD_H

#include <stddef.h>

/// Guards read-only file mappings against SIGBUS (the file shrank while mapped).
///
/// A guarded region that faults with SIGBUS gets the faulting page replaced by a zero page and its
/// "tripped" flag set; the read then completes (reading zeros) instead of killing the process. The
/// caller must check `tfg_tripped` (and the file size) after reading and discard what it read when
/// the region tripped. A SIGBUS outside every guarded region is passed on to the previous handler
/// (or the default action), so real crashes still crash.

/// Registers [base, base + length) and returns a slot (>= 0), or -1 when the table (256 regions) is full
/// or the handler could not be installed. Thread-safe.
int tfg_register(const void *base, size_t length);

/// Unregisters a slot returned by `tfg_register` (before the region is unmapped).
void tfg_unregister(int slot);

/// 1 when a SIGBUS in the slot's region was absorbed since it was registered, else 0.
int tfg_tripped(int slot);

/// Renames `from` to `to` only when `to` does not exist (Linux renameat2 RENAME_NOREPLACE, Darwin
/// renamex_np RENAME_EXCL). Returns 0, or -1 with errno set (EEXIST when `to` exists; EINVAL or ENOSYS
/// when the file system or kernel cannot do it).
int tfg_rename_noreplace(const char *from, const char *to);

#endif
