// Types for archive.mjs, so TypeScript lab helpers can read and rewrite the node's backups.
export interface ArchiveInfo { filename: string; type: string; format: string; comp: string | null; kind: 'vma' | 'tar'; vmid?: number; ctime?: number; logfilename?: string }
export declare function archiveInfo(file: string): ArchiveInfo | null
export declare function decompressor(comp: string | null): string[] | null
export declare function compressor(compress: string): { cmd: string[]; ext: string } | null
export declare function filter(cmd: string[], input: Buffer | null, file?: string): { data: Buffer; stderr: string; status: number }
export declare function readArchive(file: string, comp: string | null): { data: Buffer; stderr: string; status: number }
