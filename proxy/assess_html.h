/*
 * assess_html: the self-contained HTML report of `dualpipe assess --html FILE`. The report is
 * assess_html_head + the report's JSON (compact, '/' escaped so no "</script>" can occur) +
 * assess_html_tail. Inline CSS and script; the charts are SVG drawn by the script; nothing is loaded
 * from the network (a Content-Security-Policy forbids it). The script marks <body data-rendered="1">
 * when done, so a headless browser test can see that it ran.
 */
#ifndef DP_ASSESS_HTML_H
#define DP_ASSESS_HTML_H

static const char assess_html_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; img-src data:\">\n"
    "<title>dualpipe assess</title>\n<style>\n"
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{font-size:17px;"
    "margin-top:28px;border-bottom:1px solid #ccc}table{border-collapse:collapse;margin:8px 0}td,th{border:1px "
    "solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}.num{text-align:right}"
    ".chart{margin:8px 0}.bar{fill:#4a7bd0}.bar.p{fill:#d0664a}.kv td:first-child{font-weight:600}"
    "code{word-break:break-all}\n</style></head>\n<body>\n<h1>dualpipe assess</h1>\n<div id=\"summary\"></div>\n"
    "<div id=\"mappings\"></div>\n<script type=\"application/json\" id=\"report-data\">";

static const char assess_html_tail[] =
    "</script>\n<script>\n(function(){\n"
    "var R=JSON.parse(document.getElementById('report-data').textContent);\n"
    "function el(t,a,txt){var e=document.createElement(t);for(var k in a||{})e.setAttribute(k,a[k]);"
    "if(txt!==undefined)e.textContent=txt;return e;}\n"
    "var NS='http://www.w3.org/2000/svg';function sv(t,a){var e=document.createElementNS(NS,t);"
    "for(var k in a)e.setAttribute(k,a[k]);return e;}\n"
    "function fb(n){var u=['B','KiB','MiB','GiB','TiB','PiB'],i=0;while(n>=1024&&i<5){n/=1024;i++;}"
    "return (i?n.toFixed(1):n)+' '+u[i];}\n"
    "function fd(s){s=Math.round(s);if(s<60)return s+'s';if(s<3600)return Math.floor(s/60)+'m'+(s%60)+'s';"
    "return Math.floor(s/3600)+'h'+Math.floor((s%3600)/60)+'m';}\n"
    "function kv(rows){var t=el('table',{'class':'kv'});rows.forEach(function(r){var tr=el('tr');"
    "tr.appendChild(el('td',{},r[0]));tr.appendChild(el('td',{},String(r[1])));t.appendChild(tr);});return t;}\n"
    "function bars(id,labels,values,cls,fmt){var w=720,bh=22,lw=230,h=labels.length*bh+10,"
    "max=Math.max.apply(null,values.concat([1]));var s=sv('svg',{id:id,'class':'chart',width:w,height:h,"
    "viewBox:'0 0 '+w+' '+h,role:'img'});labels.forEach(function(l,i){var y=5+i*bh;"
    "var t=sv('text',{x:lw-6,y:y+15,'text-anchor':'end','font-size':12});t.textContent=l.length>34?"
    "'\\u2026'+l.slice(-33):l;s.appendChild(t);var bw=Math.max(values[i]?2:0,(w-lw-110)*values[i]/max);"
    "s.appendChild(sv('rect',{'class':'bar'+(cls?' '+cls:''),x:lw,y:y+3,width:bw,height:bh-6}));"
    "var v=sv('text',{x:lw+bw+6,y:y+15,'font-size':12});v.textContent=fmt?fmt(values[i]):values[i];"
    "s.appendChild(v);});return s;}\n"
    "var sm=document.getElementById('summary');\n"
    "sm.appendChild(kv([['Gen1 path',R.root],['Gen1 dialect',R.gen1_dialect],['entries walked',R.walk.entries],"
    "['walk time',fd(R.walk.seconds)+' ('+Math.round(R.walk.entries_per_s)+' entries/s)'],"
    "['estimated backfill',fd(R.estimate.backfill_seconds)],['estimate basis',R.estimate.basis],"
    "['journal',R.journal],['problems',R.problems_total]]));\n"
    "var ms=document.getElementById('mappings');\n"
    "R.mappings.forEach(function(m,mi){\n"
    " ms.appendChild(el('h2',{},'Mapping '+m.gen1_prefix+' \\u2192 '+m.filesystem+'/'+m.prefix));\n"
    " ms.appendChild(kv([['files',m.files],['directories',m.dirs],['bytes',fb(m.bytes)],['max depth',m.max_depth],"
    "['small files (< 1 MiB)',m.small_files+' ('+(100*m.small_file_share).toFixed(1)+'%)']]));\n"
    " ms.appendChild(el('h3',{},'File sizes'));\n"
    " ms.appendChild(bars('chart-hist-'+mi,R.size_buckets,m.hist));\n"
    " ms.appendChild(el('h3',{},'Largest directories (direct entries)'));\n"
    " ms.appendChild(bars('chart-dirs-'+mi,m.largest_dirs.map(function(d){return d.path;}),"
    "m.largest_dirs.map(function(d){return d.entries;})));\n"
    " var kinds=Object.keys(m.problem_counts);\n"
    " ms.appendChild(el('h3',{},'Problems by kind'));\n"
    " ms.appendChild(bars('chart-problems-'+mi,kinds,kinds.map(function(k){return m.problem_counts[k];}),'p'));\n"
    " var t=el('table',{id:'problems-'+mi,'class':'problems'});var hd=el('tr');['kind','path','rule'].forEach("
    "function(h){hd.appendChild(el('th',{},h));});t.appendChild(hd);\n"
    " kinds.forEach(function(k){(m.problems[k]||[]).forEach(function(p){var tr=el('tr',{'class':'problem',"
    "'data-kind':k});tr.appendChild(el('td',{},k));var c=el('td');c.appendChild(el('code',{},p.path));"
    "tr.appendChild(c);tr.appendChild(el('td',{},p.rule));t.appendChild(tr);});"
    "if(m.problem_counts[k]>(m.problems[k]||[]).length){var tr=el('tr');tr.appendChild(el('td',{colspan:3},"
    "k+': '+(m.problem_counts[k]-(m.problems[k]||[]).length)+' more (counted, not listed)'));t.appendChild(tr);}});\n"
    " ms.appendChild(t);\n"
    "});\n"
    "document.body.setAttribute('data-rendered','1');\n"
    "})();\n</script>\n</body></html>\n";

#endif
