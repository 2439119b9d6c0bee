# plot.gnuplot: braid benchmark plot (PNG): per-link throughput, their total and the flow's goodput
# over time, from the CSVs benchlib.write_plot_data writes. Variables are given with -e:
#   gnuplot -e "links='P-links.csv'; goodput='P-goodput.csv'; out='P.png'; ttl='title'; nl=3; \
#               names='a b c'; x0=-1; x1=-1; cap=0; ymax=0" bench/plot.gnuplot
# x0 < x1 shades that time span (an outage); cap=1 also draws per-link capacity (dashed);
# ymax > 0 fixes the y range; rtt='FILE' adds ping RTTs (t_s,rtt_ms) on the right axis.
set terminal pngcairo size 800,360 font 'sans,9' noenhanced
set output out
set datafile separator ','
set title ttl
set xlabel 'time since the flow started (s)'
set ylabel 'Mbit/s'
set grid lc rgb '#dddddd'
set key outside right top vertical
set yrange [0:*]
set xrange [0:*]
set autoscale xfixmax
if (ymax > 0) { set yrange [0:ymax] }
if (x1 > x0) { set object 1 rect from x0, graph 0 to x1, graph 1 fc rgb '#f2d7d5' fs solid 0.5 noborder behind }
set style line 1 lc rgb '#1f77b4' lw 1.5
set style line 2 lc rgb '#ff7f0e' lw 1.5
set style line 3 lc rgb '#2ca02c' lw 1.5
set style line 4 lc rgb '#9467bd' lw 1.5
set style line 5 lc rgb '#8c564b' lw 1.5
set style line 6 lc rgb '#e377c2' lw 1.5
# rtt='FILE' (t_s,rtt_ms): ping RTTs as points on the right axis
if (exists("rtt")) {
    set y2label 'ping RTT (ms)'
    set y2range [0:*]
    set y2tics
    set ytics nomirror
    plot for [i=1:nl] links using 1:(column(1+i)) with lines ls i title word(names, i), \
         links using 1:(column(nl+2)) with lines lc rgb '#777777' lw 1.5 dt 3 title 'links total', \
         goodput using 1:2 with lines lc rgb 'black' lw 2 title 'goodput (iperf3)', \
         rtt using 1:2 axes x1y2 with points pt 7 ps 0.3 lc rgb '#d62728' title 'ping RTT (right)'
} else { if (cap) {
    plot for [i=1:nl] links using 1:(column(1+i)) with lines ls i title word(names, i), \
         for [i=1:nl] links using 1:(column(nl+2+i)) with lines ls i dt 2 lw 1 title word(names, i).' capacity', \
         links using 1:(column(nl+2)) with lines lc rgb '#777777' lw 1.5 dt 3 title 'links total', \
         goodput using 1:2 with lines lc rgb 'black' lw 2 title 'goodput (iperf3)'
} else {
    plot for [i=1:nl] links using 1:(column(1+i)) with lines ls i title word(names, i), \
         links using 1:(column(nl+2)) with lines lc rgb '#777777' lw 1.5 dt 3 title 'links total', \
         goodput using 1:2 with lines lc rgb 'black' lw 2 title 'goodput (iperf3)'
} }
