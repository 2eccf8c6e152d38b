/** The deadline queues that drive WindowStore's expiry (window.ts): no timers, no scans. */
import type { AccountState } from "./account-state.ts";

/**
 * FIFO of (state, deadline, token). Deadlines are forced non-decreasing on push so the head
 * is always the earliest; forcing can only postpone a check, never advance it, and the
 * postponement is bounded by how out of order pushes are (at most the allowed lateness).
 */
export class ExpiryQueue {
  private states: (AccountState | undefined)[];
  private deadlines: Float64Array;
  private tokens: Float64Array;
  private head = 0;
  private mask: number;
  size = 0;
  private tail = Number.NEGATIVE_INFINITY;

  constructor(capacity = 1024) {
    this.states = new Array<AccountState | undefined>(capacity).fill(undefined);
    this.deadlines = new Float64Array(capacity);
    this.tokens = new Float64Array(capacity);
    this.mask = capacity - 1;
  }

  push(state: AccountState, deadline: number, token: number): void {
    if (this.size > this.mask) this.grow();
    if (deadline < this.tail) deadline = this.tail;
    this.tail = deadline;
    const slot = (this.head + this.size) & this.mask;
    this.states[slot] = state;
    this.deadlines[slot] = deadline;
    this.tokens[slot] = token;
    this.size++;
  }

  headDeadline(): number {
    return this.size === 0 ? Number.POSITIVE_INFINITY : this.deadlines[this.head]!;
  }

  headToken(): number {
    return this.tokens[this.head]!;
  }

  /** Removes and returns the head state (caller checked size > 0). */
  shift(): AccountState {
    const s = this.states[this.head]!;
    this.states[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    this.size--;
    return s;
  }

  private grow(): void {
    const cap = (this.mask + 1) * 2;
    const states = new Array<AccountState | undefined>(cap).fill(undefined);
    const deadlines = new Float64Array(cap);
    const tokens = new Float64Array(cap);
    for (let i = 0; i < this.size; i++) {
      const from = (this.head + i) & this.mask;
      states[i] = this.states[from];
      deadlines[i] = this.deadlines[from]!;
      tokens[i] = this.tokens[from]!;
    }
    this.states = states;
    this.deadlines = deadlines;
    this.tokens = tokens;
    this.head = 0;
    this.mask = cap - 1;
  }
}
