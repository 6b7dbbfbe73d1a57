// A VMA archive's clusters, accounted on the node. `vma verify` checks the header and every extent but
// not that every cluster of every device came (proxmox/pve-qemu vma-reader.c runs that pass only for a
// device with a restore target), so an archive cut at an extent boundary verifies clean and fails only
// in qmrestore — `detected missing cluster N for stream drive-scsi0` — after the old disks are freed.
// CLUSTER_READER is a perl filter for the decompressed stream between the decompressor and
// `vma verify -`: it passes stdin to stdout unchanged, reads the header's device table (name, size) and
// every extent header's blockinfo, and at EOF names the first missing cluster of each device; run with
// the argument `config`, it writes the header's guest configuration to fd 3 (no pvesm extractconfig). It reads
// only the headers: each extent's data goes from pipe to pipe by splice(2), so the filter costs the
// node almost nothing on top of the decompressor and vma (docs/benchmarks.md, issue 14).
// Why perl: the node contract has no byte-level reader (bash cannot hold NUL bytes, od/xxd are not in
// it), python3 is not part of Proxmox VE, and perl is: qm, pct, pvesh, pvesm and vzdump are perl
// programs, so a node that can restore has it. Core perl only (sysread, unpack, vec); no module.
// Layout (reference/proxmox-formats.md (e)): header_size at 56, blob_buffer_offset at 48, dev_info[i]
// at 4096 + 32·i = {devname_ptr u32, reserved u32, size u64} (big-endian), blob = u16 LE length + data;
// an extent = 512-byte header (block_count u16 at 6, 59 blockinfo u64 at 40: mask 16 · reserved 8 ·
// dev_id 8 · cluster 32) + block_count · 4096 bytes. The reader trusts nothing it reads: anything
// that is not a well-formed VMA is left to `vma verify`, whose error comes first.

/** Exit status of the reader when a device lacks clusters (vma verify's own failures exit 133). */
export const MISSING_CLUSTERS_EXIT = 97
/** Exit status of the reader asked for the configuration (`config`) when the header holds none. */
export const MISSING_CONFIG_EXIT = 96

/** The perl program (no `${` nor `%{` in it: it is embedded in bash scripts and template strings). */
export const CLUSTER_READER = String.raw`use strict; use warnings;
$SIG{PIPE} = 'IGNORE'; binmode STDIN; binmode STDOUT;
# 1 MiB pipes (F_SETPIPE_SZ): fewer wake-ups for the decompressor and vma. Extent data goes from one pipe
# to the other by splice(2), which moves pages instead of copying them through perl; only headers are read.
fcntl(STDIN, 1031, 1048576); fcntl(STDOUT, 1031, 1048576);
# splice(2)'s number on x86_64 (Proxmox VE) and aarch64 (its community ports); elsewhere the data is copied
use Config; my $splice = { x86_64 => 275, aarch64 => 76 }->{(split /-/, $Config{archname})[0]};
my (%name, %count, %seen);
# take: read exactly $n bytes (fewer at EOF), forward them, return them
sub take {
  my ($n, $buf) = (shift, '');
  while (length($buf) < $n) {
    my $r = sysread(STDIN, $buf, $n - length($buf), length($buf));
    die "read failed - $!\n" unless defined $r;
    last unless $r;
  }
  for (my $off = 0; $off < length($buf); ) { my $w = syswrite(STDOUT, $buf, length($buf) - $off, $off); exit 0 unless defined $w; $off += $w }
  return $buf;
}
# pass: forward $n bytes unread (splice) or copied (no splice here); returns the count that came
sub pass {
  my ($n, $done) = (shift, 0);
  while ($splice && $done < $n) {
    my $r = syscall($splice, fileno(STDIN), 0, fileno(STDOUT), 0, $n - $done, 0);
    if ($r > 0) { $done += $r; next }
    return $done if $r == 0;
    exit 0 if $!{EPIPE};
    $splice = undef; # EINVAL/ENOSYS: not two pipes, or an old kernel: copy instead
  }
  while ($done < $n) {
    my $want = $n - $done; $want = 1048576 if $want > 1048576;
    my $got = length(take($want)); return $done + $got if $got < $want; $done += $got;
  }
  return $done;
}
sub rest { 1 while pass(1 << 30) == (1 << 30); exit 0 }
my $head = take(12288);
rest() if length($head) < 12288 || substr($head, 0, 4) ne "VMA\0";
my $hsize = unpack('N', substr($head, 56, 4));
rest() if $hsize <= 12288 || $hsize > 16777216;
$head .= take($hsize - 12288);
rest() if length($head) < $hsize;
my ($boff, $bsize) = unpack('N N', substr($head, 48, 8));
for my $i (1 .. 255) {
  my ($ptr, undef, $hi, $lo) = unpack('N N N N', substr($head, 4096 + 32 * $i, 16));
  my $size = $hi * 4294967296 + $lo;
  next unless $size && $ptr && $ptr + 2 <= $bsize && $boff + $ptr + 2 <= $hsize;
  my $len = unpack('v', substr($head, $boff + $ptr, 2));
  my $nm = substr($head, $boff + $ptr + 2, $len); $nm =~ s/\0.*//s;
  next if $nm eq 'vmstate';
  $name{$i} = $nm; $count{$i} = int(($size + 65535) / 65536); $seen{$i} = '';
}
# Run as perl -e "$pl" config (fd 3 open): the guest's configuration, the config blob named
# qemu-server.conf, to fd 3: the bytes pvesm extractconfig prints (vma config), read from the header
# vma verify checks, in the same pass.
my ($cfg, $config);
my $want = @ARGV && $ARGV[0] eq 'config' && open($cfg, '>&=', 3);
for my $i (0 .. 255) {
  last unless $want;
  my ($np, $dp) = (unpack('N', substr($head, 2044 + 4 * $i, 4)), unpack('N', substr($head, 3068 + 4 * $i, 4)));
  next unless $np && $dp && $np + 2 <= $bsize && $dp + 2 <= $bsize && $boff + $bsize <= $hsize;
  my ($nlen, $dlen) = (unpack('v', substr($head, $boff + $np, 2)), unpack('v', substr($head, $boff + $dp, 2)));
  next unless substr($head, $boff + $np + 2, $nlen) eq "qemu-server.conf\0" && $dp + 2 + $dlen <= $bsize;
  $config = substr($head, $boff + $dp + 2, $dlen);
  last;
}
if ($want) { print $cfg $config if defined $config; close $cfg }
# perl -e "$pl" config header: the configuration only, from the header; the rest is not read (an
# archive this run has already read end to end)
if ($want && ($ARGV[1] // '') eq 'header') {
  print STDERR "vma-config: no qemu-server.conf in the archive's header\n" unless defined $config;
  exit(defined $config ? 0 : 96);
}
while (1) {
  my $eh = take(512);
  last if length($eh) < 512;
  for my $j (0 .. 58) {
    my ($hi, $cluster) = unpack('N N', substr($eh, 40 + 8 * $j, 8));
    my $dev = $hi & 255;
    vec($seen{$dev}, $cluster, 1) = 1 if $dev && exists $seen{$dev} && $cluster < $count{$dev};
  }
  my $data = 4096 * unpack('n', substr($eh, 6, 2));
  last if pass($data) < $data;
}
close STDOUT;
my $status = 0;
for my $i (sort { $a <=> $b } keys %name) {
  my ($n, $have) = ($count{$i}, unpack('%32b*', $seen{$i}));
  next if $have >= $n;
  my $first = 0; $first++ while $first < $n && vec($seen{$i}, $first, 1);
  printf STDERR "vma-clusters: detected missing cluster %d for stream %s (%d of %d clusters missing)\n", $first, $name{$i}, $n - $have, $n;
  $status = 97;
}
if ($want && !defined $config && !$status) { print STDERR "vma-config: no qemu-server.conf in the archive's header\n"; $status = 96 }
exit $status;
`

/** Bash lines that put CLUSTER_READER in $pl (a quoted here-document: nothing in it is expanded). */
export const DEFINE_CLUSTER_READER = `read -r -d '' pl <<'HDR_VMA_CLUSTERS' || true\n${CLUSTER_READER}HDR_VMA_CLUSTERS`

export interface MissingClusters {
  device: string
  /** The first missing cluster (64 KiB each), as qmrestore would name it. */
  cluster: number
  missing: number
  total: number
}

/** The reader's lines in a node's output, one per device that lacks clusters. */
export function parseMissingClusters(text: string): MissingClusters[] {
  const out: MissingClusters[] = []
  for (const m of text.matchAll(/vma-clusters: detected missing cluster (\d+) for stream (\S+) \((\d+) of (\d+) clusters missing\)/g)) {
    out.push({ device: m[2]!, cluster: Number(m[1]), missing: Number(m[3]), total: Number(m[4]) })
  }
  return out
}

/** `drive-scsi0 lacks cluster 40 and 87 more of 128 (the archive ends early); qmrestore would fail …` */
export function missingClustersMessage(list: MissingClusters[]): string {
  const parts = list.map((m) => `device ${m.device} lacks cluster ${m.cluster}${m.missing > 1 ? ` and ${m.missing - 1} more` : ''} of ${m.total}`)
  const first = list[0]
  return `${parts.join('; ')} (the archive ends early, at an extent boundary, so \`vma verify\` passes it); qmrestore would fail with "detected missing cluster ${first?.cluster} for stream ${first?.device}" after freeing the guest's disks`
}

/** Remove the reader's lines from a node's output (to find another tool's message). */
export const withoutClusterLines = (text: string) => text.split('\n').filter((l) => !l.startsWith('vma-clusters: ') && !l.startsWith('vma-config: ')).join('\n')
