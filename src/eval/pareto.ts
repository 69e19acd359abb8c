/** The Pareto front of configurations on two objectives: lower cost (time) and higher quality. */

export interface TradeOff {
  cost: number;
  quality: number;
}

/** Indices of the points no other point beats on both axes (cost ≤, quality ≥, one strictly). */
export function paretoFront(points: readonly TradeOff[]): number[] {
  const front: number[] = [];
  points.forEach((p, i) => {
    if (!Number.isFinite(p.cost) || Number.isNaN(p.quality)) return;
    const dominated = points.some((q, j) => j !== i && Number.isFinite(q.cost) && q.cost <= p.cost && q.quality >= p.quality && (q.cost < p.cost || q.quality > p.quality));
    if (!dominated) front.push(i);
  });
  return front.sort((a, b) => points[a]!.cost - points[b]!.cost);
}
