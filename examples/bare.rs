//! The benchmark's yardstick: a bare warp handler returning a constant, stats-sized JSON
//! body on `GET /api/pollofficesstats/{id}/`. `bench/http` compares UFRECS against it.

use warp::Filter;

#[tokio::main]
async fn main() {
    let body: &'static str = r#"{"flags":[],"last_vote":{"age":"less_60","gender":"female","has_torn":false,"index":1000,"timestamp":"2025-08-15T14:02:11Z"},"poll_office_id":"CM-CE-000001","totals":{"disputed":0,"female":500,"has_torn":100,"less_30":333,"less_60":334,"male":500,"more_60":333,"sources":2,"verified":0,"votes":1000}}"#;
    let route = warp::path!("api" / "pollofficesstats" / String)
        .and(warp::get())
        .map(move |_id: String| warp::reply::with_header(body, "content-type", "application/json"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("listening on {}", listener.local_addr().unwrap());
    warp::serve(route).incoming(listener).run().await;
}
