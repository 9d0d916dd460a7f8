/** An error a user can act on, with a one-line message (lrcodec/errors.py's LrcodecError). */
export class LrcodecError extends Error {
  constructor(message) {
    super(message);
    this.name = "LrcodecError";
  }
}
