// Types for vma.mjs, so the TypeScript tests and seed can import the simulator's VMA module.
export declare const BLOCK_SIZE: 4096
export declare const CLUSTER_SIZE: 65536
export declare const EXTENT_HEADER_SIZE: 512
export declare const BLOCKS_PER_EXTENT: 59
export declare const HEADER_STRUCT_SIZE: 12288
export declare class VmaError extends Error {
  constructor(message: string, stage: 'header' | 'extent' | 'missing')
  stage: 'header' | 'extent' | 'missing'
}
export interface VmaHeaderInfo {
  version: number
  uuid: Buffer
  ctime: number
  headerSize: number
  configs: { name: string; data: Buffer }[]
  devices: { id: number; name: string; size: number }[]
}
export declare function writeVma(spec: {
  configs: { name: string; data: Buffer | string }[]
  devices: { name: string; data: Buffer }[]
  ctime?: number
  uuid?: Buffer
  clustersPerExtent?: number
}): Buffer
export declare function readVmaHeader(buf: Buffer): VmaHeaderInfo
export declare function readVma(
  buf: Buffer,
  opts?: { mode?: 'verify' | 'restore'; onProgress?: (pct: number, bytes: number) => void },
): { header: VmaHeaderInfo; devices: { id: number; name: string; size: number; data: Buffer | null }[] }
export declare function vmaConfigs(buf: Buffer): Record<string, string>
/** The streaming reader behind readVma and `vma verify`: feed chunks, then end(). */
export declare class VmaReader {
  constructor(opts?: { mode?: 'verify' | 'restore'; headerOnly?: boolean; onProgress?: (pct: number, bytes: number) => void })
  push(chunk: Buffer): void
  end(): { header: VmaHeaderInfo; devices: { id: number; name: string; size: number; data: Buffer | null }[] }
}
