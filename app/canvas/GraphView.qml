// A ready-to-use graph view: the GraphCanvas, its captions (a QML overlay kept in place while
// panning: the canvas's caption model gives item coordinates) and the hover tooltip.
import QtQuick
import QtQuick.Controls
import Circuitscope.Canvas

Item {
    id: root

    property alias source: canvas.source
    property alias canvas: canvas
    property alias zoom: canvas.zoom
    property alias centerX: canvas.centerX
    property alias centerY: canvas.centerY
    property color captionColor: "#202020"
    property color captionBackground: "#d0ffffff"
    property int captionPixelSize: 11
    property bool captionsVisible: true
    // Captions only above this zoom (they overlap when the graph is tiny).
    property real captionMinZoom: 0.35

    signal nodeClicked(int slot, int graphIndex, string id, int modifiers)
    signal nodeDoubleClicked(int slot, int graphIndex, string id, int modifiers)
    signal backgroundClicked()

    function fitToView() { canvas.fitToView() }
    function centerOnId(id) { return canvas.centerOnId(id) }

    GraphCanvas {
        id: canvas
        objectName: "graphCanvas"
        anchors.fill: parent
        onNodeClicked: (slot, graphIndex, id, modifiers) => root.nodeClicked(slot, graphIndex, id, modifiers)
        onNodeDoubleClicked: (slot, graphIndex, id, modifiers) => root.nodeDoubleClicked(slot, graphIndex, id, modifiers)
        onBackgroundClicked: root.backgroundClicked()
    }

    Item {
        id: captionLayer
        objectName: "captionLayer"
        anchors.fill: parent
        clip: true
        visible: root.captionsVisible && canvas.zoom >= root.captionMinZoom

        Repeater {
            model: canvas.captions
            delegate: Text {
                x: model.x + model.radius + 3
                y: model.y - height / 2
                text: model.text
                color: root.captionColor
                font.pixelSize: root.captionPixelSize
                textFormat: Text.PlainText
                elide: Text.ElideRight
                width: Math.min(implicitWidth, 220)
                Rectangle {
                    anchors.fill: parent
                    anchors.margins: -1
                    z: -1
                    radius: 2
                    color: root.captionBackground
                }
            }
        }
    }

    ToolTip {
        id: tip
        parent: root
        visible: canvas.hoveredNode >= 0 && canvas.hoveredText.length > 0
        text: canvas.hoveredText
        x: Math.min(Math.max(0, canvas.hoveredPosition.x + 14), Math.max(0, root.width - width))
        y: Math.min(Math.max(0, canvas.hoveredPosition.y + 14), Math.max(0, root.height - height))
        delay: 300
    }
}
