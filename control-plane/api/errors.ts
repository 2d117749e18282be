import { PosternError } from '../../common/errors.ts';

/** One identity already holds as many snapshot watches as it may (429). */
export class WatchLimitError extends PosternError {
  constructor(message: string) {
    super('POSTERN_WATCH_LIMIT', message);
  }
}

/** An ack names no snapshot watch the caller holds open (409). */
export class NoWatchError extends PosternError {
  constructor(message: string) {
    super('POSTERN_NO_WATCH', message);
  }
}
