#!/usr/bin/env bash
# Interleaved A/B: A = the commit before issue 10 (/work/baseline), B = this work (/work/main). A B A B A B.
set -u
out=/work/perf-ab
for bench in engine serve; do
  for i in 1 2 3; do
    for side in A B; do
      dir=/work/baseline; [ $side = B ] && dir=/work/main
      f=$out/$bench-$i-$side.txt
      echo "== $bench $i $side $(date -u +%T)" >> $out/progress.log
      (cd $dir && timeout 1800 npm run -s bench:$bench > $f 2>&1; echo "rc=$?" >> $f)
    done
  done
done
echo "== done $(date -u +%T)" >> $out/progress.log
