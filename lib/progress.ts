// A spinner for anything that can take more than two seconds. Quiet when stderr is not a terminal.

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']

export interface Progress {
  update(text: string): void
  stop(): void
}

export function progress(label: string): Progress {
  if (!process.stderr.isTTY) return { update() {}, stop() {} }
  let text = label
  let i = 0
  const draw = () => process.stderr.write(`\r\x1b[2K${FRAMES[i++ % FRAMES.length]} ${text}`)
  const timer = setInterval(draw, 100)
  draw()
  return {
    update(t: string) {
      text = `${label} ${t}`
    },
    stop() {
      clearInterval(timer)
      process.stderr.write('\r\x1b[2K')
    },
  }
}
